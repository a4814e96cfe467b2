"""`hvd-monitor tensorboard RUN...`: the TensorBoard command for the runs' tb/ directories.

The trainer writes its scalars under clear tags (throughput/global_step_per_sec,
throughput/examples_per_sec, ...). One run is shown with `--logdir PATH` (TensorBoard
takes that path literally, colons included). Several runs are shown side by side with
`--logdir_spec name:path,name:path`, one name per run.

TensorBoard splits a `--logdir_spec` at every comma and each entry at its first colon
(tensorboard/backend/event_processing/data_ingester.py, `_parse_event_files_spec`),
so run names are written without `,` and `:`, and a path holding a comma cannot be
written at all. For such runs the command uses `--logdir LINKS` instead, where LINKS
is a directory of symbolic links `LINKS/<name>/tb -> <run>/tb` under the user's cache
directory (`$XDG_CACHE_HOME` or `~/.cache`, then `hvd-pretrain/tensorboard/<digest>`);
the digest depends only on the runs, so the same runs always give the same command.
Both TensorBoard's Python loader and its Rust data server follow symbolic links.
"""

import hashlib
import os
import shlex
import shutil
import sys

from hvd_pretrain import rundir
from hvd_pretrain.errors import MonitorError

SPEC_SEPARATORS = ",:"   # what a --logdir_spec name may not hold
LINKS_SUBDIR = os.path.join("hvd-pretrain", "tensorboard")


class TensorBoardError(MonitorError):
    """A run TensorBoard cannot be pointed at (one-line message naming the path)."""


def find_tensorboard():
    """The tensorboard executable next to this Python, on PATH, or None."""
    sibling = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if os.access(sibling, os.X_OK):
        return sibling
    return shutil.which("tensorboard")


def spec_name(name):
    """A run name TensorBoard's --logdir_spec keeps whole: `,` and `:` become `_`, and a
    name may not be empty or start with `/` (TensorBoard would read it as a path)."""
    for ch in SPEC_SEPARATORS:
        name = name.replace(ch, "_")
    name = name.lstrip("/")
    return name or "run"


def _absolute(path):
    # POSIX keeps a leading '//', which TensorBoard would take for the start of a URI.
    return "/" + os.path.abspath(path).lstrip("/")


def event_dirs(run_paths):
    """[(name, tb_dir)] for each run, names unique and free of `,` and `:`.
    Raises TensorBoardError when a run is not a directory or has no tb/."""
    out, names = [], set()
    for path in run_paths:
        run = rundir.RunDir(_absolute(path))
        if not os.path.isdir(run.root):
            raise TensorBoardError("%s is not a directory; pass run directories (runs/<name>)" % path)
        if not os.path.isdir(run.tensorboard):
            raise TensorBoardError("%s has no TensorBoard events (%s missing); the trainer writes them there"
                                   % (path, run.tensorboard))
        base = spec_name(run.name)
        name, k = base, 1
        while name in names:
            k += 1
            name = "%s_%d" % (base, k)
        names.add(name)
        out.append((name, run.tensorboard))
    return out


def links_root():
    """Where link directories are made: $XDG_CACHE_HOME (or ~/.cache)/hvd-pretrain/tensorboard."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, LINKS_SUBDIR)


def link_dir(dirs, root=None):
    """Make (or refresh) a directory holding `<name>/tb -> tb_dir` for each (name, tb_dir);
    return its path. The same `dirs` always give the same path. Raises OSError."""
    root = root or links_root()
    digest = hashlib.sha256("\0".join("%s\0%s" % pair for pair in dirs).encode("utf-8", "surrogateescape"))
    top = os.path.join(root, digest.hexdigest()[:16])
    for name, target in dirs:
        holder = os.path.join(top, name)
        os.makedirs(holder, exist_ok=True)
        link = os.path.join(holder, "tb")
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        tmp = "%s.%d.tmp" % (link, os.getpid())
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return top


def logdir_args(dirs, links=None):
    """TensorBoard arguments that show exactly `dirs` [(name, tb_dir)], each under its name.
    Raises TensorBoardError (naming the path) when a path holds a comma and the link
    directory cannot be made."""
    if len(dirs) == 1:
        return ["--logdir", dirs[0][1]]
    with_comma = [path for _, path in dirs if "," in path]
    if not with_comma:
        return ["--logdir_spec", ",".join("%s:%s" % pair for pair in dirs)]
    try:
        return ["--logdir", link_dir(dirs, links)]
    except OSError as e:
        raise TensorBoardError(
            "%s holds a comma, which TensorBoard's --logdir_spec cannot express, and the link directory "
            "under %s cannot be made (%s); rename the run directory or show it alone"
            % (with_comma[0], links or links_root(), e.strerror or e)) from e


def command(run_paths, port=6006, host=None, executable=None, links=None):
    """The argv that starts TensorBoard over the runs (see the module docstring)."""
    dirs = event_dirs(run_paths)
    exe = executable or find_tensorboard()
    argv = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    argv += logdir_args(dirs, links)
    argv += ["--port", str(port)]
    if host:
        argv += ["--host", host]
    return argv


def format_command(argv):
    """One shell line: every argument quoted with shlex.quote."""
    return " ".join(shlex.quote(a) for a in argv)
