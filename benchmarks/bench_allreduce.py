"""Allreduce bandwidth at np=2: a Horovod grouped allreduce of BERT-base-sized gradients
(Gloo and MPI controllers, fp32 and fp16 compression) vs mpi4py's Allreduce of one
buffer of the same size.

Bus bandwidth follows the nccl-tests convention: busbw = bytes / time x 2(n-1)/n,
so it is comparable across world sizes. Each worker times `--iters` allreduces
after `--warmup`, and rank 0 prints one JSON line; the launcher runs the
variants in alternation for `--rounds` rounds and reports medians.

  python benchmarks/bench_allreduce.py                 # needs horovodrun, mpirun and mpi4py
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import common

HERE = os.path.abspath(__file__)
BIN = os.path.dirname(sys.executable)


def bert_base_shapes():
    """The trainable variable shapes of our BERT-base pretrainer (TF-free: from the parameter arithmetic)."""
    from hvd_pretrain.models import preset
    c = preset("base")
    h, i, v, p, t = c.hidden_size, c.intermediate_size, c.vocab_size, c.max_position_embeddings, c.type_vocab_size
    shapes = [(v, h), (p, h), (t, h), (h,), (h,)]
    for _ in range(c.num_layers):
        shapes += [(h, h), (h,)] * 4 + [(h,), (h,)] + [(h, i), (i,), (i, h), (h,), (h,), (h,)]
    shapes += [(h, h), (h,)]  # pooler
    shapes += [(h, h), (h,), (h,), (h,), (v,)]  # MLM transform, LayerNorm, output bias
    shapes += [(h, 2), (2,)]  # NSP
    return shapes


def worker_horovod(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hvd_pretrain.tfcompat import tf
    import horovod.tensorflow as hvd
    hvd.init()
    tensors = [tf.random.stateless_uniform(s, seed=(hvd.rank(), k)) for k, s in enumerate(bert_base_shapes())]
    nbytes = sum(int(tf.size(x)) for x in tensors) * 4
    compression = hvd.Compression.fp16 if args.fp16 else hvd.Compression.none

    def once():
        out = hvd.grouped_allreduce(tensors, op=hvd.Sum, compression=compression)
        out[-1].numpy()

    for _ in range(args.warmup):
        once()
    start = time.perf_counter()
    for _ in range(args.iters):
        once()
    seconds = (time.perf_counter() - start) / args.iters
    if hvd.rank() == 0:
        print("RESULT " + json.dumps({"bytes": nbytes, "seconds": seconds, "size": hvd.size()}), flush=True)


def worker_mpi4py(args):
    import numpy as np
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    count = sum(int(np.prod(s)) for s in bert_base_shapes())
    send = np.random.RandomState(comm.rank).rand(count).astype(np.float32)
    recv = np.empty_like(send)
    for _ in range(args.warmup):
        comm.Allreduce(send, recv, op=MPI.SUM)
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(args.iters):
        comm.Allreduce(send, recv, op=MPI.SUM)
    seconds = (time.perf_counter() - start) / args.iters
    if comm.rank == 0:
        print("RESULT " + json.dumps({"bytes": send.nbytes, "seconds": seconds, "size": comm.size}), flush=True)


def env():
    e = dict(os.environ)
    e.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", OMPI_ALLOW_RUN_AS_ROOT="1",
             OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_mpi_yield_when_idle="1", PYTHONUNBUFFERED="1")
    e["PATH"] = BIN + os.pathsep + e.get("PATH", "")
    e["PYTHONPATH"] = common.REPO + os.pathsep + e.get("PYTHONPATH", "")
    return e


def variants(args):
    common_args = ["--iters", str(args.iters), "--warmup", str(args.warmup)]
    horovod = [os.path.join(BIN, "horovodrun"), "-np", str(args.np)]
    worker = [sys.executable, HERE, "--worker"]
    return {
        "horovod gloo fp32": horovod + ["--gloo"] + worker + ["horovod"] + common_args,
        "horovod gloo fp16": horovod + ["--gloo"] + worker + ["horovod", "--fp16"] + common_args,
        "horovod mpi fp32": horovod + ["--mpi"] + worker + ["horovod"] + common_args,
        "horovod mpi fp16": horovod + ["--mpi"] + worker + ["horovod", "--fp16"] + common_args,
        "mpi4py Allreduce fp32": ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np)]
        + worker + ["mpi4py"] + common_args,
    }


def run_variant(cmd, timeout):
    """Run one launcher command in its own process group (killed whole on timeout); rank 0's result."""
    popen = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        out, _ = popen.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for line in out.splitlines():
        if "RESULT " in line:
            return json.JSONDecoder().raw_decode(line.split("RESULT ", 1)[1].strip())[0]
    raise RuntimeError("no result from %s:\n%s" % (" ".join(cmd), out[-3000:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["horovod", "mpi4py"])
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--np", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    if args.worker == "horovod":
        return worker_horovod(args)
    if args.worker == "mpi4py":
        return worker_mpi4py(args)
    results = {name: [] for name in variants(args)}
    for _ in range(args.rounds):
        for name, cmd in variants(args).items():
            results[name].append(run_variant(cmd, args.timeout))
            print(name, results[name][-1], flush=True)
    rows = []
    reference = None
    for name, values in results.items():
        seconds = common.median([v["seconds"] for v in values])
        nbytes, n = values[0]["bytes"], values[0]["size"]
        busbw = nbytes / seconds * 2 * (n - 1) / n
        if name.startswith("mpi4py"):
            reference = busbw
        rows.append([name, "%.1f" % (nbytes / 1e6), "%.1f" % (1e3 * seconds), "%.2f" % (busbw / 1e9)])
    for row in rows:
        row.append("%.2f" % (float(row[3]) * 1e9 / reference) if reference else "n/a")
    table = common.markdown_table(["allreduce", "MB (fp32 gradients)", "ms", "bus GB/s", "vs mpi4py"], rows)
    notes = ("np=%d on one machine; BERT-base gradient shapes (%d tensors) in one grouped allreduce; "
             "%d timed iterations after %d warm-up, median of %d rounds. fp16 rows move half the bytes; their "
             "bus GB/s counts the fp32 size, i.e. effective gradient bandwidth."
             % (args.np, len(bert_base_shapes()), args.iters, args.warmup, args.rounds))
    command = "python benchmarks/bench_allreduce.py --np=%d --iters=%d --rounds=%d" % (args.np, args.iters,
                                                                                      args.rounds)
    if args.no_write:
        print(table)
    else:
        common.publish("Allreduce bandwidth", command, notes, table, common.machine_line())


if __name__ == "__main__":
    main()
