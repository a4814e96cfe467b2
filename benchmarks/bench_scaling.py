"""Horovod weak scaling on one machine, measured against the machine's own ceiling.

Each rank runs the trainer's optimizer step (hvd_pretrain.train.accumulate.AccumulatingStep.run over
HorovodCommunicator: local micro-batch, the allreduce in gradient groups overlapping backward, clip,
AdamW; one host read at the end, as the trainer reads once per logging window) on its own synthetic
batch, one intra-op thread per rank. Rows:

* np=1: one process alone;
* ceiling: two independent np=1 processes at the same time (no allreduce): what two ranks can reach
  on this machine's shared cores and memory bandwidth;
* np=2 with the overlapped allreduce (`--bucket_mb`, default 25), and with one group after backward
  (`bucket_mb` 0), and with fp16 compression;
* np=2 allreduce only: the same gradient groups allreduced with no forward or backward, to time the
  communication alone.

Every row also reports the CPU seconds that all its processes spent per example (process CPU time of
every rank, all threads, over the timed steps) and the machine's busy share (CPU seconds / (wall seconds
x cores)). When two ranks keep every core busy, the share of the ceiling np=2 can reach is bounded by
the ceiling's CPU per example over np=2's: CPU time the allreduce adds cannot hide behind backward on
cores that backward already fills.

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
    if args.allreduce_only:
        from hvd_pretrain.train.communicate import gradient_buckets
        variables = model.trainable_variables
        groups = gradient_buckets([v.shape.num_elements() * 4 for v in variables], args.bucket_mb)
        grads = [tf.ones_like(v) for v in variables]

        @tf.function
        def allreduce_once(tensors):
            return [comm.grouped_allreduce_sum([tensors[i] for i in group]) for group in groups]

        def run_once():
            allreduce_once(grads)

        def read_once():
            tf.nest.flatten(allreduce_once(grads))[0].numpy()
    else:
        run_once, read_once = (lambda: step.run(batch)), (lambda: step.step(batch))
    for _ in range(args.warmup):
        read_once()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps - 1):
        run_once()
    read_once()  # the one read: waits for every step before it
    seconds = (time.perf_counter() - start) / args.steps
    cpu = (time.process_time() - cpu_start) / args.steps
    cpu_all_ranks = float(hvd.allreduce(tf.constant(cpu, tf.float64), op=hvd.Sum).numpy())
    if hvd.rank() == 0:
        print("RESULT " + json.dumps({"seconds": seconds, "size": hvd.size(), "cpu_per_step": cpu_all_ranks,
                                      "examples_per_sec": args.batch * hvd.size() / seconds}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--allreduce_only", action="store_true", help="worker: allreduce the gradient groups only")
    parser.add_argument("--model", default="small")
    common.add_batch_shape(parser)
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
        variants[(c, "np=2 allreduce only")] = [launch(2, bucket + ["--allreduce_only"])]
    results = {key: [] for key in variants}
    cpu = {key: [] for key in variants}  # CPU seconds of all processes per example
    busy = {key: [] for key in variants}  # CPU seconds / (wall seconds x cores)
    cores = os.cpu_count()
    for _ in range(args.rounds):
        for key, cmds in variants.items():
            with concurrent.futures.ThreadPoolExecutor(len(cmds)) as pool:
                outs = list(pool.map(lambda cmd: run_variant(cmd, args.timeout), cmds))
            results[key].append(sum(o["examples_per_sec"] for o in outs))
            cpu_per_step = sum(o["cpu_per_step"] for o in outs)
            cpu[key].append(cpu_per_step / (args.batch * sum(o["size"] for o in outs)))
            busy[key].append(sum(o["cpu_per_step"] / o["seconds"] for o in outs) / cores)
            print(key, "%.2f ex/s, %.3f CPU s/ex, busy %.2f" % (results[key][-1], cpu[key][-1], busy[key][-1]),
                  flush=True)
    rows = []
    for c in controllers:
        single = common.median(results[(c, "np=1")])
        ceiling = common.median(results[(c, "ceiling")])
        ceiling_cpu = common.median(cpu[(c, "ceiling")])
        for label in ("np=1", "ceiling", "np=2 overlapped", "np=2 one group", "np=2 fp16", "np=2 allreduce only"):
            value, cpu_ex = common.median(results[(c, label)]), common.median(cpu[(c, label)])
            compute = label != "np=2 allreduce only"
            rows.append([c, label, "%.2f" % value if compute else "-",
                         ", ".join("%.2f" % v for v in results[(c, label)]) if compute else "-",
                         "%.2f" % (value / (2 * single)) if compute and label != "np=1" else "-",
                         "%.2f" % (value / ceiling) if compute and label.startswith("np=2") else "-",
                         "%.1f" % (1000 * cpu_ex) if compute else "%.1f" % (1000 * cpu_ex * args.batch * 2),
                         "%.2f" % common.median(busy[(c, label)]),
                         "%.2f" % (ceiling_cpu / cpu_ex) if compute and label.startswith("np=2") else "-"])
    table = common.markdown_table(["controller", "variant", "examples/s (all ranks)", "rounds",
                                   "weak-scaling efficiency", "of ceiling",
                                   "CPU ms per example (allreduce only: per step, both ranks)", "busy share",
                                   "bound: ceiling CPU / this CPU"], rows)
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
