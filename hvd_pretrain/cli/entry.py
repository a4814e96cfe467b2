"""The one way a command-line tool ends on a user's mistake.

Every tool's main is wrapped in `entry`: a UsageError raised anywhere below it
(hvd_pretrain/errors.py) is printed as ``error: <one line>`` on stderr and the
tool exits with the error's code (2). Any other exception keeps its traceback.
"""

import functools
import sys

from hvd_pretrain.errors import UsageError


def report(error):
    """Print a UsageError as the one line the user sees; returns its exit code."""
    print("error: %s" % error, file=sys.stderr, flush=True)
    return error.exit_code


def entry(main):
    """Decorate main(...) -> exit code so that a UsageError becomes one line and its exit code."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as e:
            return report(e)
    return wrapped
