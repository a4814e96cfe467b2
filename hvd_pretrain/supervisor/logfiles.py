"""Rotated log files in <run dir>/logs and following them.

  logs/train.log       everything the supervised command prints, plus [hvd-job] event lines
  logs/supervisor.log  the supervisor's events only (start, exit, restart, hang, stop)
  logs/supervisor.err  the supervisor's own stderr (tracebacks if it ever crashes)

Rotation uses the standard library's RotatingFileHandler: train.log.1 is the newest
backup, then .2, ...; with 10 or more backups their names no longer sort by age as
strings (train.log.10 < train.log.2), so `rotated_files` orders them by number.
"""

import logging
import logging.handlers
import os
import sys
import time

from hvd_pretrain.numbered import numbered_key
from hvd_pretrain.rundir import SUPERVISOR_LOG, TRAIN_LOG, RunDir  # noqa: F401 - names used by callers

SUPERVISOR_ERR = "supervisor.err"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 5


def log_path(run_dir, which=TRAIN_LOG):
    return RunDir(run_dir).log(which)


def rotating_logger(path, name, max_bytes=DEFAULT_MAX_BYTES, backups=DEFAULT_BACKUPS, stamp=False):
    """A logger writing to `path` with rotation; `stamp` prefixes each line with UTC time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    logger = logging.getLogger("hvd_job.%s.%s" % (name, path))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                   encoding="utf-8")
    formatter = logging.Formatter("%(asctime)s %(message)s" if stamp else "%(message)s",
                                  "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    return logger


def rotated_files(path):
    """`path` (if it exists) and its backups `path.N`, newest first: ordered by the number N
    (1, 2, ..., 10), never by the name as a string."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    backups = [n for n in names if n.startswith(base + ".") and n[len(base) + 1:].isdigit()]
    ordered = sorted(backups, key=lambda n: numbered_key(n[len(base) + 1:]))
    return ([path] if base in names else []) + [os.path.join(folder, n) for n in ordered]


def _tail_of(path, count):
    """Whole lines at the end of `path`: the first line read is dropped when it may be cut."""
    try:
        size = os.path.getsize(path)
        start = max(0, size - max(4096, count * 400)) if count else 0
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if start else lines


def tail_lines(path, count):
    """The last `count` lines of a log, continued into its rotated backups (newest first) when
    the current file holds fewer, reading at most ~count*400 bytes from the end of each file.
    count 0: every line of the backups (oldest first) and of the log."""
    if not count:
        return [line for name in reversed(rotated_files(path)) for line in _tail_of(name, 0)]
    lines = []
    for name in rotated_files(path):
        lines = _tail_of(name, count - len(lines)) + lines
        if len(lines) >= count:
            break
    return lines[-count:]


def follow(path, out=None, lines=50, keep_going=lambda: True, poll=0.25):
    """Print the last `lines` lines of `path`, then new ones as they come (like tail -F).

    Survives rotation (a new inode or a shorter file is reopened from its start).
    Stops when keep_going() returns False and nothing new arrived, or on Ctrl-C.
    """
    out = out or sys.stdout
    for line in tail_lines(path, lines):
        out.write(line + "\n")
    out.flush()
    handle, inode = None, None
    try:
        position = os.path.getsize(path)
    except OSError:
        position = 0
    try:
        while True:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is not None and (handle is None or st.st_ino != inode or st.st_size < position):
                if handle is not None:
                    handle.close()
                    position = 0
                handle, inode = open(path, "rb"), st.st_ino
                handle.seek(position)
            chunk = handle.read() if handle is not None else b""
            if chunk:
                position += len(chunk)
                out.write(chunk.decode("utf-8", "replace"))
                out.flush()
                continue
            if not keep_going():
                return 0
            time.sleep(poll)
    except KeyboardInterrupt:
        return 0
    finally:
        if handle is not None:
            handle.close()
