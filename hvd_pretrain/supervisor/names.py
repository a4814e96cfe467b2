"""Job names and where their run directories live.

A job NAME lives in <runs root>/NAME. The runs root is --runs_dir, else the
environment variable HVD_PRETRAIN_RUNS, else ./runs. Names are used only as a
path component and as data, never given to a shell, so spaces, quotes, `;`,
`$()` and backticks are fine; `/`, `..` and control characters are not.
"""

import hashlib
import os
import re

from hvd_pretrain.errors import JobError

RUNS_ENV = "HVD_PRETRAIN_RUNS"
RUN_DIR_ENV = "HVD_PRETRAIN_RUN_DIR"
JOB_NAME_ENV = "HVD_JOB_NAME"
DEFAULT_RUNS = "runs"
MAX_NAME = 100


class JobNameError(JobError, ValueError):
    """A job name that cannot be used (message is one line)."""


def validate_name(name):
    """Return `name` if it is a usable job name, else raise JobNameError with the reason."""
    if not name:
        raise JobNameError("job name is empty; give a name such as bert_base_phase1")
    if "/" in name or "\\" in name:
        raise JobNameError("job name %r contains a path separator; use a plain name without '/'" % name)
    if ".." in name or name == ".":
        raise JobNameError("job name %r contains '..' or is '.'; use a plain name" % name)
    if name.startswith("-"):
        raise JobNameError("job name %r starts with '-'; it would read as an option" % name)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise JobNameError("job name %r contains a control character (newline, tab, ...)" % name)
    if len(name) > MAX_NAME:
        raise JobNameError("job name is %d characters long; keep it under %d" % (len(name), MAX_NAME))
    return name


def runs_root(runs_dir=None):
    """The directory holding all job run directories (absolute)."""
    return os.path.abspath(runs_dir or os.environ.get(RUNS_ENV) or DEFAULT_RUNS)


def run_dir_for(name, runs_dir=None):
    return os.path.join(runs_root(runs_dir), validate_name(name))


def safe_token(name):
    """A form of `name` usable as a tmux session or systemd unit name: [A-Za-z0-9_-] plus a hash."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "job"
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return "hvd-job-%s-%s" % (base, digest)
