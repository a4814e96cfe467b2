"""`hvd-monitor tensorboard RUN...`: the TensorBoard command for the runs' tb/ directories.

The trainer writes its scalars under clear tags (throughput/global_step_per_sec,
throughput/examples_per_sec, ...). Several runs are shown side by side with
--logdir_spec, one name per run.
"""

import os
import shlex
import shutil
import sys

from hvd_pretrain import rundir


class TensorBoardError(Exception):
    """A run without TensorBoard events (one-line message)."""


def find_tensorboard():
    """The tensorboard executable next to this Python, on PATH, or None."""
    sibling = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if os.access(sibling, os.X_OK):
        return sibling
    return shutil.which("tensorboard")


def event_dirs(run_paths):
    """[(name, tb_dir)] for each run; raises TensorBoardError when a run has no tb/."""
    out, names = [], set()
    for path in run_paths:
        run = rundir.RunDir(os.path.abspath(path))
        if not os.path.isdir(run.root):
            raise TensorBoardError("%s is not a directory; pass run directories (runs/<name>)" % path)
        if not os.path.isdir(run.tensorboard):
            raise TensorBoardError("%s has no TensorBoard events (%s missing); the trainer writes them there"
                                   % (path, run.tensorboard))
        name = run.name
        while name in names:
            name += "_"
        names.add(name)
        out.append((name, run.tensorboard))
    return out


def command(run_paths, port=6006, host=None, executable=None):
    """The argv that starts TensorBoard over the runs."""
    dirs = event_dirs(run_paths)
    exe = executable or find_tensorboard()
    argv = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    if len(dirs) == 1:
        argv += ["--logdir", dirs[0][1]]
    else:
        argv += ["--logdir_spec", ",".join("%s:%s" % (name, path) for name, path in dirs)]
    argv += ["--port", str(port)]
    if host:
        argv += ["--host", host]
    return argv


def format_command(argv):
    return " ".join(shlex.quote(a) for a in argv)
