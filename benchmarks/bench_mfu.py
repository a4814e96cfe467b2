"""MFU of our pre-training step on this machine, and the cost of gradient accumulation.

MFU = model FLOP/s of the real optimizer step (hvd_pretrain.train.accumulate
.AccumulatingStep: MLM+NSP forward, backward, accumulation, clip, AdamW)
divided by the dense-matmul peak measured in the same process with the same
TensorFlow build (hvd_pretrain.train.peak). Peak and step are timed in
alternation and the medians are used.

Accumulation overhead: seconds per optimizer step with accum=N divided by
N x the seconds of an accum=1 step, alternating N = 1, 2, 4, 8.

  python benchmarks/bench_mfu.py                      # small and base, batch 8, seq 128
  python benchmarks/bench_mfu.py --models=small --rounds=5
"""

import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402  (puts the repository on sys.path)
from hvd_pretrain.models import build_pretrainer, flops, preset  # noqa: E402
from hvd_pretrain.tfcompat import tf  # noqa: E402
from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator  # noqa: E402
from hvd_pretrain.train.config import TrainConfig  # noqa: E402
from hvd_pretrain.train.optimization import make_optimizer  # noqa: E402
from hvd_pretrain.train.peak import measure_matmul_peak  # noqa: E402


def make_step(model, accum, batch, seq_len, predictions, vocab_size):
    optimizer = make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0))
    step = AccumulatingStep(model, optimizer, LocalCommunicator(), accum)
    batches = [common.synthetic_batch(tf, vocab_size, batch, seq_len, predictions, seed=i) for i in range(accum)]
    return lambda: step.step(batches)


def mfu_rows(args):
    rows = []
    for name in args.models.split(","):
        cfg = preset(name)
        model = build_pretrainer(cfg).build_for()
        step = make_step(model, 1, args.batch, args.seq_len, args.predictions, cfg.vocab_size)
        step()  # trace and create the optimizer slots
        step_times, peaks = [], []
        for _ in range(args.rounds):
            peaks.append(max(measure_matmul_peak(tf, n=n, repeats=1, min_seconds=0.3) for n in args.matmul_n))
            step_times.append(common.timed(step, args.steps_per_round))
        seconds = common.median(step_times)
        peak = common.median(peaks)
        per_seq = flops.training_flops_per_sequence(cfg, args.seq_len, args.predictions)
        achieved = args.batch * per_seq / seconds
        rows.append([name, args.batch, args.seq_len, "%.3f" % seconds, "%.2f" % (args.batch / seconds),
                     "%.1f" % (per_seq / 1e9), "%.1f" % (achieved / 1e9), "%.1f" % (peak / 1e9),
                     "%.1f%%" % (100 * achieved / peak)])
        print(rows[-1], flush=True)
    return rows


def accumulation_rows(args):
    cfg = preset(args.accum_model)
    steps = {}
    for n in [int(x) for x in args.accum.split(",")]:
        # One model per N: Keras optimizers sharing one model's variables slow each other down.
        steps[n] = make_step(build_pretrainer(cfg).build_for(), n, args.batch, args.seq_len, args.predictions, cfg.vocab_size)
    times = common.alternate(steps, args.rounds)
    base = common.median(times[1]) if 1 in times else None
    rows = []
    for n, values in times.items():
        t = common.median(values)
        rows.append([args.accum_model, n, "%.3f" % t, "%.3f" % (t / n),
                     "%.3f" % (t / (n * base)) if base else "n/a"])
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="small,base")
    common.add_batch_shape(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps_per_round", type=int, default=2)
    parser.add_argument("--matmul_n", default="512,1024,2048", help="matrix sizes; the peak is the best of them")
    parser.add_argument("--accum", default="1,2,4,8")
    parser.add_argument("--accum_model", default="small")
    parser.add_argument("--skip_accum", action="store_true")
    parser.add_argument("--no_write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    args.matmul_n = [int(n) for n in args.matmul_n.split(",")]
    machine = common.machine_line(tf)
    command = "python benchmarks/bench_mfu.py --models=%s --batch=%d --rounds=%d --steps_per_round=%d" % (
        args.models, args.batch, args.rounds, args.steps_per_round)
    table = common.markdown_table(
        ["model", "batch", "seq", "s/step", "examples/s", "GFLOP/seq (train)", "model GFLOP/s",
         "matmul peak GFLOP/s", "MFU"], mfu_rows(args))
    notes = ("Our optimizer step (MLM+NSP, AdamW, accum 1, fp32, no XLA) on synthetic batches; peak = best of "
             "n x n fp32 matmuls for n in %s in the same process, alternated with the steps; medians of %d rounds."
             % (args.matmul_n, args.rounds))
    if not args.no_write:
        common.publish("MFU on this machine", command, notes, table, machine)
    else:
        print(table)
    if args.skip_accum:
        return
    table = common.markdown_table(["model", "accum N", "s/optimizer step", "s/micro-batch",
                                   "step(N) / (N x step(1))"], accumulation_rows(args))
    notes = ("Accumulation overhead: one optimizer step over N micro-batches of %d x %d, alternating N; medians "
             "of %d rounds. Below 1.0 means the per-step work (allreduce, clip, optimizer) is amortised."
             % (args.batch, args.seq_len, args.rounds))
    if not args.no_write:
        common.publish("Gradient accumulation overhead", command + " --accum=" + args.accum, notes, table, machine)
    else:
        print(table)


if __name__ == "__main__":
    main()
