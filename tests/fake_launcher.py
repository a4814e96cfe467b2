"""Test fixture: a launcher that outlives one of its ranks (as horovodrun or mpirun can).

It starts one "rank" child that records its pid in ranks/1.jsonl (as the trainer
does), then writes heartbeat steps to metrics.jsonl while the child lives. The
child dies (SIGKILL to itself) after --rank_lives_for seconds; the launcher then
stops stepping and lingers, optionally after printing a launcher-style report
("Exit code: 137"). On the second attempt (a marker file in the run dir) it
finishes normally.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from hvd_pretrain.rundir import RunDir, append_jsonl

RANK = """
import os, signal, socket, sys, time
from hvd_pretrain.rundir import append_jsonl
host = socket.gethostname() if sys.argv[3] == "local" else "another-node"
append_jsonl(sys.argv[1], {"time": time.time(), "rank": 1, "step": 0, "event": "start", "pid": os.getpid(),
                           "host": host})
time.sleep(float(sys.argv[2]))
os.kill(os.getpid(), signal.SIGKILL)
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank_lives_for", type=float, default=1.0)
    parser.add_argument("--report", action="store_true", help="print 'Exit code: 137' once the rank is dead")
    parser.add_argument("--remote", action="store_true", help="the rank records another host (its pid is not ours)")
    args = parser.parse_args()
    rd = RunDir(os.environ["HVD_PRETRAIN_RUN_DIR"]).ensure()
    marker = os.path.join(rd.root, "attempted")
    first = not os.path.exists(marker)
    open(marker, "a").close()
    step = 0
    append_jsonl(rd.metrics, {"time": time.time(), "step": step, "event": "start"})
    if not first:
        for step in range(1, 6):
            append_jsonl(rd.metrics, {"time": time.time(), "step": step})
            time.sleep(0.05)
        return 0
    append_jsonl(rd.rank_log(0), {"time": time.time(), "rank": 0, "step": 0, "event": "start", "pid": os.getpid(),
                                  "host": socket.gethostname()})
    rank = subprocess.Popen([sys.executable, "-c", RANK, rd.rank_log(1), str(args.rank_lives_for),
                             "remote" if args.remote else "local"])
    while rank.poll() is None:
        step += 1
        append_jsonl(rd.metrics, {"time": time.time(), "step": step})
        time.sleep(0.05)
    if args.report:
        print("Process name: 1\nExit code: %d" % (128 + signal.SIGKILL), flush=True)
    while True:  # the launcher lingers, never reporting back
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
