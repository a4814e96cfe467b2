"""Horovod weak scaling on one machine: np=1 with one thread vs np=2 with one thread each,
under the Gloo and MPI controllers, with and without fp16 gradient compression.

Each rank runs our optimizer step (hvd_pretrain.train.accumulate.AccumulatingStep
over HorovodCommunicator: local micro-batch, one grouped allreduce, clip,
AdamW) on its own synthetic batch. Weak-scaling efficiency = examples/s at
np=2 / (2 x examples/s at np=1, same controller and compression). The
variants run in alternation for `--rounds` rounds; medians are reported.

  python benchmarks/bench_scaling.py --model=small --batch=8
"""

import argparse
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
    step = AccumulatingStep(model, optimizer, comm, 1)
    batch = [common.synthetic_batch(tf, cfg.vocab_size, args.batch, args.seq_len, args.predictions,
                                    seed=hvd.rank())]
    step.step(batch)
    broadcast_state(hvd, model, optimizer)
    for _ in range(args.warmup):
        step.step(batch)
    start = time.perf_counter()
    for _ in range(args.steps):
        step.step(batch)
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
    parser.add_argument("--steps", type=int, default=5)
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
    variants = {}
    for controller in ("gloo", "mpi"):
        for fp16 in (False, True):
            for np_ in (1, 2):
                if np_ == 1 and fp16:
                    continue  # nothing to compress on one rank
                variants[(controller, fp16, np_)] = ([os.path.join(BIN, "horovodrun"), "-np", str(np_),
                                                      "--" + controller] + worker_args + (["--fp16"] if fp16 else []))
    results = {key: [] for key in variants}
    for _ in range(args.rounds):
        for key, cmd in variants.items():
            results[key].append(run_variant(cmd, args.timeout)["examples_per_sec"])
            print(key, results[key][-1], flush=True)
    rows = []
    for controller in ("gloo", "mpi"):
        single = common.median(results[(controller, False, 1)])
        rows.append([controller, 1, "-", "%.2f" % single, "1.00"])
        for fp16 in (False, True):
            pair = common.median(results[(controller, fp16, 2)])
            rows.append([controller, 2, "fp16" if fp16 else "none", "%.2f" % pair, "%.2f" % (pair / (2 * single))])
    table = common.markdown_table(["controller", "np", "compression", "examples/s (all ranks)",
                                   "weak-scaling efficiency"], rows)
    notes = ("BERT %s, %d x %d per rank, one intra-op thread per rank, our optimizer step with one grouped "
             "allreduce per step; %d timed steps after %d warm-up, median of %d rounds. Both ranks share this "
             "machine's cores and memory bandwidth." % (args.model, args.batch, args.seq_len, args.steps,
                                                         args.warmup, args.rounds))
    command = "python benchmarks/bench_scaling.py --model=%s --batch=%d --rounds=%d" % (args.model, args.batch,
                                                                                       args.rounds)
    if args.no_write:
        print(table)
    else:
        common.publish("Horovod weak scaling on one machine", command, notes, table, common.machine_line())


if __name__ == "__main__":
    main()
