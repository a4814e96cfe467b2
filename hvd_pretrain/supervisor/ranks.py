"""A rank that died while its launcher still runs: a crash, not a hang.

When one rank of a Horovod job dies, the others block in their next collective.
The launcher (horovodrun, mpirun) notices, prints the rank's exit code, and
tears the rest down; but that teardown can take a while (a rank blocked in a
collective does not reach its SIGTERM handler, so the launcher waits for its own
grace period), and a launcher may also linger for good. Until the launcher
exits, the step does not advance, and a stall timeout alone would call it a hang.

Two facts say "a rank crashed" before the launcher exits:
  * the launcher's report of a failing rank in the output ("Exit code: 137");
  * a rank's pid, recorded by the trainer in ranks/<rank>.jsonl on this host, is gone
    (its "end" record, written when it finishes normally, takes it off the list).

The supervisor then waits `rank_exit_grace` seconds for the launcher to end by
itself, and records the attempt as an error either way. If training moves on
instead (an elastic job that replaced the rank), the failure is forgotten.
"""

import os
import socket

from hvd_pretrain.rundir import read_jsonl
from hvd_pretrain.supervisor import outcome, proctree

# Steps the heartbeat must advance past the failure before it counts as recovered:
# one step's record may still be in flight when a rank dies.
RECOVERY_STEPS = 2


class RankWatch:
    """Follows ranks/<rank>.jsonl from the start of an attempt: which local rank pids are live."""

    def __init__(self, ranks_dir, host=None):
        self.ranks_dir = ranks_dir
        self.host = host or socket.gethostname()
        self.offsets = {}
        self.pids = {}        # rank -> pid of its latest start record on this host
        self.forgiven = set()

    def start(self):
        """Skip what earlier attempts wrote."""
        self.offsets = {path: _size(path) for path in self._files()}
        self.pids = {}
        self.forgiven = set()

    def poll(self):
        for path in self._files():
            offset = self.offsets.get(path, 0)
            if _size(path) < offset:
                offset = 0
            records, self.offsets[path], _ = read_jsonl(path, offset)
            for record in records:
                rank, pid = record.get("rank"), record.get("pid")
                if not isinstance(rank, int) or not isinstance(pid, int):
                    continue
                if record.get("event") == "end" or record.get("host", self.host) != self.host:
                    self.pids.pop(rank, None)
                else:
                    self.pids[rank] = pid

    def dead(self):
        """[(rank, pid)] of recorded local ranks whose process is gone, lowest rank first."""
        return [(rank, pid) for rank, pid in sorted(self.pids.items())
                if pid not in self.forgiven and not proctree.pid_alive(pid)]

    def forgive(self):
        """Training went on without them (an elastic job replaced them): stop reporting these."""
        self.forgiven.update(pid for _, pid in self.dead())

    def _files(self):
        try:
            names = os.listdir(self.ranks_dir)
        except OSError:
            return []
        return [os.path.join(self.ranks_dir, n) for n in sorted(names)
                if n.endswith(".jsonl") and n[:-len(".jsonl")].isdigit()]


class FailureWatch:
    """The first sign of a rank failure in one attempt, and whether training recovered from it."""

    def __init__(self, ranks):
        self.ranks = ranks
        self.reason = None
        self.since = None
        self.step = None
        self.launcher_line = None

    def output_line(self, line):
        """Called for every line the command prints (from the output pump's thread)."""
        if self.launcher_line is None and outcome.LAUNCHER_CODE.search(line):
            self.launcher_line = line.strip()

    def check(self, heartbeat, now):
        """Returns the failure's one-line reason (new or standing), or None. Clears it on recovery."""
        self.ranks.poll()
        if self.reason is not None:
            if (heartbeat.last_step is not None and self.step is not None
                    and heartbeat.last_step >= self.step + RECOVERY_STEPS):
                self.ranks.forgive()
                self.launcher_line = None
                self.reason = self.since = self.step = None
            return self.reason
        dead = self.ranks.dead()
        if dead:
            reason = "rank %s died (pid %s)" % (
                ", ".join(str(r) for r, _ in dead), ", ".join(str(p) for _, p in dead))
        elif self.launcher_line is not None:
            reason = "the launcher reported a failed rank (%s)" % self.launcher_line
        else:
            return None
        self.reason, self.since = reason, now
        self.step = heartbeat.last_step if heartbeat.last_step is not None else 0
        return reason


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
