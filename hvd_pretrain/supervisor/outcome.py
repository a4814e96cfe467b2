"""What an exit means, and the line that explains it.

The supervised command is usually a launcher (horovodrun, mpirun) whose own exit
code hides the ranks' codes: horovodrun exits 1 whatever the rank did. Both
launchers print the first failing rank's code ("Exit code: 2"), so the output
tail is read to recover it. Exit 2 from the trainer means a configuration error:
restarting cannot fix it.
"""

import re
import signal

CONFIG_ERROR = 2
LAUNCHER_CODE = re.compile(r"Exit code:\s*(-?\d+)")
RANK_PREFIX = re.compile(r"^\s*\[[\d,]+\]\s*(<std(?:out|err)>)?:?\s?")
ERROR_WORDS = re.compile(r"error|fatal|exception|unknown (command line )?flag|traceback|killed", re.I)
OWN_ERROR = re.compile(r"^(error|fatal)\b", re.I)
EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b:")
LAUNCHER_NOISE = (
    "Horovod detected that one or more processes",
    "mpirun detected that one or more processes",
    "Primary job", "Per user-direction", "Traceback (most recent call last)",
    "raise RuntimeError", "RuntimeError: Horovod detected", "Process name:", "Exit code:",
)


def launcher_rank_code(lines):
    """The first failing rank's exit code printed by horovodrun/mpirun, or None."""
    for line in lines:
        match = LAUNCHER_CODE.search(line)
        if match:
            return int(match.group(1))
    return None


def effective_code(returncode, lines):
    """The code that says what happened: the failing rank's when a launcher reported one."""
    if returncode == 0:
        return 0
    rank = launcher_rank_code(lines)
    return rank if rank is not None else returncode


def describe_code(code):
    """'exit code 1', 'killed by SIGKILL', 'exit code 143 (SIGTERM)'."""
    if code is None:
        return "unknown exit"
    if code < 0:
        return "killed by %s" % _signame(-code)
    if code > 128 and code - 128 < 65:
        return "exit code %d (%s)" % (code, _signame(code - 128))
    return "exit code %d" % code


def _signame(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


def is_config_error(code):
    return code == CONFIG_ERROR


def error_line(lines, limit=300):
    """The most telling error line of an output tail, without launcher prefixes, or None.

    Preference: the trainer's own one-line error ("error: ...", "FATAL ..."), then a Python
    exception line ("ValueError: ..."), then any other line with an error word; the last
    line of the best kind wins. Launcher summaries and tracebacks' frames are skipped.
    """
    best, best_rank = None, 0
    for raw in lines:
        line = raw.rstrip()
        if not line or not ERROR_WORDS.search(line):
            continue
        stripped = RANK_PREFIX.sub("", line).strip()
        if (any(noise in stripped for noise in LAUNCHER_NOISE) or stripped.startswith("[hvd-job]")
                or stripped.lower().startswith("traceback") or stripped.startswith(("File ", "raise "))):
            continue
        if OWN_ERROR.match(stripped):
            rank = 3
        elif EXCEPTION_LINE.match(stripped):
            rank = 2
        else:
            rank = 1
        if rank >= best_rank:
            best, best_rank = stripped, rank
    return best[:limit] if best else None
