"""Test fixture: a stand-in for hvd-pretrain that speaks the run-directory contract.

Used only by the supervisor's own unit tests (fast, no TensorFlow). It appends
metrics.jsonl records, writes checkpoints/ckpt.json every --save_checkpoints_steps,
resumes from it, and on SIGTERM/SIGUSR1 checkpoints and exits 128+signal.
Failure knobs (each fires once per run dir): --crash_at_step, --hang_at_step; an unknown flag exits 2.
"""

import argparse
import json
import os
import signal
import sys
import time

from hvd_pretrain.rundir import RunDir, append_jsonl, read_json, write_json_atomic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", default=os.environ.get("HVD_PRETRAIN_RUN_DIR"))
    parser.add_argument("--num_train_steps", type=int, default=20)
    parser.add_argument("--save_checkpoints_steps", type=int, default=5)
    parser.add_argument("--step_time", type=float, default=0.05)
    parser.add_argument("--crash_at_step", type=int, default=None)
    parser.add_argument("--hang_at_step", type=int, default=None)
    parser.add_argument("--print_args", action="store_true")
    args, unknown = parser.parse_known_args()
    if args.print_args:
        print("ARGV=" + json.dumps(sys.argv[1:]), flush=True)
    if unknown:
        print("FATAL Flags parsing error: Unknown command line flag %r" % unknown[0].lstrip("-"), file=sys.stderr)
        return 2
    rank = int(os.environ.get("HOROVOD_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    rd = RunDir(args.run_dir).ensure()
    ckpt = os.path.join(rd.checkpoints, "ckpt.json")
    step = (read_json(ckpt) or {}).get("step", 0)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, lambda s, _f: stop.append(s))

    def record(event=None):
        if rank != 0:
            return
        rec = {"time": time.time(), "step": step, "num_train_steps": args.num_train_steps,
               "global_step_per_sec": 1.0 / args.step_time, "eta_sec": (args.num_train_steps - step) * args.step_time}
        if event:
            rec["event"] = event
        append_jsonl(rd.metrics, rec)

    record("resume" if step else "start")
    while step < args.num_train_steps:
        time.sleep(args.step_time)
        step += 1
        hung_marker = os.path.join(args.run_dir, "hung_once")
        if args.hang_at_step == step and not os.path.exists(hung_marker):
            open(hung_marker, "w").close()
            while True:
                time.sleep(1)
        marker = os.path.join(args.run_dir, "crashed_once")
        if args.crash_at_step == step and not os.path.exists(marker):
            open(marker, "w").close()
            print("RuntimeError: simulated crash at step %d" % step, flush=True)
            os._exit(1)
        if (step % args.save_checkpoints_steps == 0 or stop) and rank == 0:
            write_json_atomic(ckpt, {"step": step})
            record("checkpoint")
        else:
            record()
        if stop:
            print("stopping on signal %d at step %d" % (stop[0], step), flush=True)
            return 128 + stop[0]
    record("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
