"""metrics.jsonl as a heartbeat.

The trainer's rank 0 appends one record per logging window. The supervisor only
needs one fact from it: when did the optimizer step last move forward? A run
whose step does not advance for the stall timeout is hung (a stopped or
deadlocked rank, a wedged filesystem, a collective waiting forever).
"""

import os
import time

from hvd_pretrain.rundir import read_jsonl

# Records the trainer writes before its first step; they do not end the startup allowance.
STARTUP_EVENTS = ("start", "resume")


class Heartbeat:
    """Follows metrics.jsonl from the point an attempt started.

    Records written before `start()` (by earlier attempts) are skipped, so a
    resumed run that repeats a step still counts as alive. The startup allowance
    (--startup-timeout) lasts until the first step after the "start"/"resume"
    record; from then on the stall timeout applies.
    """

    def __init__(self, metrics_path):
        self.path = metrics_path
        self.offset = 0
        self.started = None
        self.last_step = None
        self.first_step = None
        self.last_advance = None
        self.last_record = None
        self.floor = None

    def start(self, now=None):
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = 0
        self.started = now if now is not None else time.time()
        self.last_step = self.first_step = self.last_advance = self.last_record = self.floor = None

    def poll(self, now=None):
        """Read new records; return True if the step advanced."""
        now = now if now is not None else time.time()
        try:
            if os.path.getsize(self.path) < self.offset:
                self.offset = 0  # the file was replaced; read it again from the top
        except OSError:
            return False
        records, self.offset, _ = read_jsonl(self.path, self.offset)
        advanced = False
        for record in records:
            step = record.get("step")
            if not isinstance(step, (int, float)):
                continue
            self.last_record = record
            if record.get("event") in STARTUP_EVENTS:
                # The trainer is up, but its first step (graph tracing, data) is still startup time.
                self.floor = step if self.floor is None else max(self.floor, step)
                continue
            if self.floor is not None and step <= self.floor and self.last_step is None:
                continue
            if self.last_step is None or step > self.last_step:
                if self.first_step is None:
                    self.first_step = step
                self.last_step = step
                self.last_advance = now
                advanced = True
        return advanced

    def silent_for(self, now=None):
        """Seconds since the step last advanced (or since the attempt started, before any record)."""
        now = now if now is not None else time.time()
        return now - (self.last_advance if self.last_advance is not None else self.started)

    def stalled(self, stall_timeout, startup_timeout, now=None):
        """None while healthy, else a one-line reason."""
        if self.started is None:
            return None
        silent = self.silent_for(now)
        if self.last_advance is None:
            if startup_timeout and silent > startup_timeout:
                return "no heartbeat within the startup timeout (%.0fs): metrics.jsonl got no step" % startup_timeout
            return None
        if stall_timeout and silent > stall_timeout:
            return "hang: step %s did not advance for %.0fs (stall timeout %.0fs)" % (
                _fmt_step(self.last_step), silent, stall_timeout)
        return None


def _fmt_step(step):
    return str(int(step)) if float(step).is_integer() else str(step)
