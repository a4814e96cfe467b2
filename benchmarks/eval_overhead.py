"""What held-out evaluation costs a training run at the default settings.

Builds data with a 10% held-out split (enough for 512 eval examples) from the embedded corpus (tiny BERT's defaults: seq 128, NSP,
an 8000-piece vocab), trains with `hvd-pretrain` at its defaults (micro-batch 32, evaluation every
--save_checkpoints_steps = 100 steps on 512 held-out examples, plus at the start and the end), and
reads the run's own records: each evaluation's wall time (`eval.seconds`) and the training steps'
rate (the logging windows). The first evaluation also traces the eval function; the steady cost is
that of the later ones.

    python benchmarks/eval_overhead.py [--steps=300] [--np=1] [--append]

overhead = steady eval seconds / (eval_every x seconds per optimizer step)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import REPO, machine_line, markdown_table, publish


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps to train")
    parser.add_argument("--np", type=int, default=1, help="ranks (horovodrun -np) ")
    parser.add_argument("--eval_every", type=int, default=0, help="0: the default (--save_checkpoints_steps)")
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="eval_overhead_") as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [os.path.join(bin_dir, "hvd-pretrain"), "--run_dir=" + run_dir, "--eval_fraction=0.1",
               "--num_train_steps=%d" % args.steps]
        if args.eval_every:
            cmd.append("--eval_every=%d" % args.eval_every)
        if args.np > 1:
            cmd = [os.path.join(bin_dir, "horovodrun"), "-np", str(args.np), "--gloo"] + cmd
        subprocess.run(cmd, check=True, env=env, cwd=tmp)
        records = _records(os.path.join(run_dir, "metrics.jsonl"))
    plan = next(r for r in records if r.get("event") == "start")
    evals = [r for r in records if r.get("event") == "eval"]
    windows = [r for r in records if "global_step_per_sec" in r]
    if len(evals) < 3 or not windows:
        sys.exit("the run made %d evaluations and %d logging windows; train longer (--steps)"
                 % (len(evals), len(windows)))
    # Windows after the first: the first holds the model's tracing.
    steady = windows[1:] or windows
    step_seconds = sum(1.0 / w["global_step_per_sec"] for w in steady) / len(steady)
    every = evals[2]["step"] - evals[1]["step"]
    later = [r["eval"]["seconds"] for r in evals[1:]]
    steady_eval = sum(later) / len(later)
    overhead = steady_eval / (every * step_seconds)
    table = markdown_table(
        ["ranks", "global batch", "steps", "eval every", "eval examples", "first eval s", "steady eval s",
         "s / step", "overhead"],
        [[plan.get("world_size", args.np), plan.get("global_batch"), args.steps, every, evals[-1]["eval"]["examples"],
          "%.2f" % evals[0]["eval"]["seconds"], "%.2f" % steady_eval, "%.3f" % step_seconds,
          "%.1f%%" % (100 * overhead)]])
    notes = ("Held-out evaluation at hvd-pretrain's defaults (tiny BERT, seq 128, micro-batch 32, every 100"
             " steps on 512 examples). overhead = steady eval seconds / (eval every x seconds per step).")
    command = "python benchmarks/eval_overhead.py --steps=%d --np=%d" % (args.steps, args.np)
    if args.append:
        publish("Evaluation overhead", command, notes, table, machine_line())
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
