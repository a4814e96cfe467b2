"""Graceful stop on SIGTERM and SIGUSR1 (Slurm's pre-timeout signal).

The handler only records the request; the training loop finishes the current
optimizer step, agrees with the other ranks (the stop flag rides on the step's
counts allreduce), writes a checkpoint and exits with 128 + signal number.

SIGHUP is deliberately left alone: a process started under nohup keeps
ignoring it, and one started from a terminal keeps the default.
"""

import signal


class StopRequest:
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def install(self):
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self):
        return self.signum is not None

    def exit_code(self, default_signum=signal.SIGTERM):
        return 128 + int(self.signum or default_signum)

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
