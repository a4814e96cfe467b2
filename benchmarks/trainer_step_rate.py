"""Optimizer steps per second of the real `hvd-pretrain` for two or more source trees, alternated.

Each candidate is a source tree of this project (a checkout or `git worktree` of any commit), run
with PYTHONPATH pointing at it, so the same command compares the trainer before and after a change
on the same machine in the same hour:

    git worktree add --detach /tmp/before <commit>
    python benchmarks/trainer_step_rate.py --trees=before:/tmp/before,after:. --rounds=3

Every run trains the default model (tiny BERT) on the same shards, one process (or `--np` ranks
under horovodrun), and the step rate is the `global_step_per_sec` of its last logging window
(so tracing and the first steps are out). Runs go A, B, A, B, ...; the table gives every round
and the median ratio of each candidate to the first.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common

BIN = os.path.dirname(sys.executable)


def last_window(metrics):
    rate = None
    with open(metrics) as f:
        for line in f:
            record = json.loads(line)
            if "global_step_per_sec" in record:
                rate = record
    if rate is None:
        sys.exit("error: %s has no logging window" % metrics)
    return rate


def run_once(tree, run_dir, args):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [os.path.join(BIN, "hvd-pretrain"), "--run_dir=" + run_dir, "--num_train_steps=%d" % args.steps,
           "--log_every=%d" % args.log_every, "--save_checkpoints_steps=%d" % (args.steps * 10)] + args.flag
    if args.data_dir:
        cmd.append("--data_dir=" + args.data_dir)
    if args.np > 1:
        cmd = [os.path.join(BIN, "horovodrun"), "-np", str(args.np), "--gloo"] + cmd
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=args.timeout)
    return last_window(os.path.join(run_dir, "metrics.jsonl"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", required=True, help="NAME:PATH,NAME:PATH (the first is the reference)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--np", type=int, default=1)
    p.add_argument("--data_dir", default="", help="shards to train on (default: the trainer's default corpus)")
    p.add_argument("--flag", action="append", default=[], help="an extra hvd-pretrain flag (repeatable)")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = p.parse_args()
    trees = [item.split(":", 1) for item in args.trees.split(",")]
    work = tempfile.mkdtemp(prefix="step_rate_")
    rates = {name: [] for name, _ in trees}
    batch = {}
    load_before = os.getloadavg()[0]
    try:
        for r in range(args.rounds):
            for name, tree in trees:
                window = run_once(tree, os.path.join(work, "%s-%d" % (name, r)), args)
                rates[name].append(window["global_step_per_sec"])
                batch[name] = (window["global_batch"], window["accum_steps"])
                print("round %d  %-10s %.3f step/s" % (r + 1, name, rates[name][-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = trees[0][0]
    rows = []
    for name, _ in trees:
        ratios = common.round_ratios(rates[name], rates[ref])
        rows.append([name, "%d x %d" % batch[name], ", ".join("%.2f" % v for v in rates[name]),
                     "%.2f" % statistics.median(rates[name]), "%.3f" % statistics.median(ratios)])
    table = common.markdown_table(["tree", "global batch x accum", "step/s per round", "median step/s",
                                   "median of per-round ratios to %s" % ref], rows)
    notes = ("`hvd-pretrain` (default tiny BERT), %d steps, step rate of the last %d-step window, %d rank(s), "
             "alternated; load average %.1f before, %.1f after." % (args.steps, args.log_every, args.np,
                                                                     load_before, os.getloadavg()[0]))
    command = "python benchmarks/trainer_step_rate.py " + " ".join(sys.argv[1:])
    if args.append:
        common.publish("Trainer step rate, tiny BERT", command, notes, table, common.machine_line())
    else:
        print(notes + "\n\n" + table)
        print("measured %s UTC" % time.strftime("%Y-%m-%d %H:%M", time.gmtime()))


if __name__ == "__main__":
    main()
