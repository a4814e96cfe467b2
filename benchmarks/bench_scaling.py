"""Horovod weak scaling on one machine, measured against the machine's own ceiling.

Each rank runs the trainer's optimizer step (hvd_pretrain.train.accumulate.AccumulatingStep.run over
HorovodCommunicator: local micro-batch, the allreduce in gradient groups overlapping backward, clip,
AdamW; one host read at the end, as the trainer reads once per logging window) on its own synthetic
batch, one intra-op thread per rank. Rows:

* np=1: one process alone;
* ceiling: two independent np=1 processes at the same time (no allreduce): what two ranks can reach
  on this machine's shared cores and memory bandwidth;
* np=2 with the overlapped allreduce (`--bucket_mb`, default 25), and with one group after backward
  (`bucket_mb` 0), and with fp16 compression.

Weak-scaling efficiency = examples/s at np=2 / (2 x np=1); "of ceiling" = np=2 / ceiling. The variants
run in alternation for `--rounds` rounds; medians are reported.

  python benchmarks/bench_scaling.py --model=mini --batch=8 --controllers=gloo
"""

import argparse
import concurrent.futures
import os
import sys
import time

import common
from bench_allreduce import BIN, env, run_variant

HERE = os.path.abspath(__file__)


def worker(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hvd_pretrain.train.distributed import init_horovod
    hvd = init_horovod(threads=1)
    import json

    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.tfcompat import tf
    from hvd_pretrain.train.accumulate import AccumulatingStep, HorovodCommunicator
    from hvd_pretrain.train.config import TrainConfig
    from hvd_pretrain.train.distributed import broadcast_state
    from hvd_pretrain.train.optimization import make_optimizer
    cfg = preset(args.model)
    model = build_pretrainer(cfg).build_for()
    optimizer = make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0))
    comm = HorovodCommunicator(hvd, hvd.Compression.fp16 if args.fp16 else hvd.Compression.none)
    step = AccumulatingStep(model, optimizer, comm, 1, bucket_mb=args.bucket_mb)
    batch = [common.synthetic_batch(tf, cfg.vocab_size, args.batch, args.seq_len, args.predictions,
                                    seed=hvd.rank())]
    step.build(batch[0])
    step.step(batch)
    broadcast_state(hvd, model, optimizer)
    for _ in range(args.warmup):
        step.step(batch)
    start = time.perf_counter()
    for _ in range(args.steps - 1):
        step.run(batch)
    step.step(batch)  # the one read: waits for every step before it
    seconds = (time.perf_counter() - start) / args.steps
    if hvd.rank() == 0:
        print("RESULT " + json.dumps({"seconds": seconds, "size": hvd.size(),
                                      "examples_per_sec": args.batch * hvd.size() / seconds}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--model", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--bucket_mb", type=float, default=25.0)
    parser.add_argument("--controllers", default="gloo,mpi")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    worker_args = [sys.executable, HERE, "--worker", "--model", args.model, "--batch", str(args.batch),
                   "--seq_len", str(args.seq_len), "--predictions", str(args.predictions),
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
    controllers = args.controllers.split(",")
    variants = {}  # label -> the launcher commands that run at the same time
    for c in controllers:
        launch = lambda np_, extra: ([os.path.join(BIN, "horovodrun"), "-np", str(np_), "--" + c]  # noqa: E731
                                     + worker_args + extra)
        bucket = ["--bucket_mb", str(args.bucket_mb)]
        variants[(c, "np=1")] = [launch(1, bucket)]
        variants[(c, "ceiling")] = [launch(1, bucket), launch(1, bucket)]
        variants[(c, "np=2 overlapped")] = [launch(2, bucket)]
        variants[(c, "np=2 one group")] = [launch(2, ["--bucket_mb", "0"])]
        variants[(c, "np=2 fp16")] = [launch(2, bucket + ["--fp16"])]
    results = {key: [] for key in variants}
    for _ in range(args.rounds):
        for key, cmds in variants.items():
            with concurrent.futures.ThreadPoolExecutor(len(cmds)) as pool:
                outs = list(pool.map(lambda cmd: run_variant(cmd, args.timeout), cmds))
            results[key].append(sum(o["examples_per_sec"] for o in outs))
            print(key, "%.2f" % results[key][-1], flush=True)
    rows = []
    for c in controllers:
        single = common.median(results[(c, "np=1")])
        ceiling = common.median(results[(c, "ceiling")])
        for label in ("np=1", "ceiling", "np=2 overlapped", "np=2 one group", "np=2 fp16"):
            value = common.median(results[(c, label)])
            rows.append([c, label, "%.2f" % value, ", ".join("%.2f" % v for v in results[(c, label)]),
                         "%.2f" % (value / (2 * single)) if label != "np=1" else "-",
                         "%.2f" % (value / ceiling) if label.startswith("np=2") else "-"])
    table = common.markdown_table(["controller", "variant", "examples/s (all ranks)", "rounds",
                                   "weak-scaling efficiency", "of ceiling"], rows)
    notes = ("BERT %s, %d x %d per rank, one intra-op thread per rank, the trainer's optimizer step (allreduce in "
             "%g MB groups overlapping backward unless stated); %d timed steps after %d warm-up, median of %d "
             "alternating rounds; load average %.1f at the end." % (
                 args.model, args.batch, args.seq_len, args.bucket_mb, args.steps, args.warmup, args.rounds,
                 os.getloadavg()[0]))
    command = "python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:])
    if args.no_write:
        print(table)
    else:
        common.publish("Horovod weak scaling on one machine", command, notes, table, common.machine_line())


if __name__ == "__main__":
    main()
