"""How much of the optimizer update runs while backward is still running, per candidate step.

A bare step that neither clips nor checks the gradient can start updating a variable as soon as its
gradient exists, so most of its update hides behind the rest of backward. A step that clips by the
global norm (Google's run_pretraining, the trainer) or skips a non-finite gradient (the trainer,
identically on every rank) needs the whole gradient before its first update. This script measures
that difference from the profiler's trace of single steps:

* backward ends: the end of the last backward op (name scope gradient_tape/, gradients/ for Google),
  from the step's first op;
* update ops started before backward ends, and their op time before that point;
* after backward: from the end of backward to the end of the step's last op.

Candidates are bench_peers' builders: ours (the bare step), ours (clip 1.0), the trainer's step at
clip 1.0 and at clip 0 (the skip decision alone), and Google's reference. Each round profiles one
step of every candidate, alternated; the table gives medians over rounds.

  python benchmarks/update_overlap.py --size=small --rounds=5
"""

import argparse
import os
import shutil
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_peers  # noqa: E402
import common  # noqa: E402
import profile_step  # noqa: E402
from hvd_pretrain.models import preset  # noqa: E402
from hvd_pretrain.tfcompat import tf  # noqa: E402


def one_step(fn, logdir, tf1):
    """Profile one call of fn: (backward end, step end, update ops, those started before backward
    ended, their op ms before it, op ms of all updates), times in ms from the step's first op."""
    tf.profiler.experimental.start(logdir)
    try:
        fn()
    finally:
        tf.profiler.experimental.stop()
    ops, _, _ = profile_step.parse_trace(profile_step.read_space(logdir))
    shutil.rmtree(logdir, ignore_errors=True)
    first = min(s for _, _, s, _ in ops)
    backward_end = max(e for node, _, _, e in ops if profile_step.phase(node, tf1) == "backward")
    updates = [(s, e) for node, _, s, e in ops if profile_step.phase(node, tf1) == "optimizer"]
    early = [(s, e) for s, e in updates if s < backward_end]
    ms = 1e-9
    return ((backward_end - first) * ms, (max(e for _, _, _, e in ops) - first) * ms, len(updates), len(early),
            sum(min(e, backward_end) - s for s, e in early) * ms, sum(e - s for s, e in updates) * ms)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    common.add_batch_shape(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    cfg = preset(args.size)
    batch = bench_peers.numpy_batch(cfg, args)
    built = {"google": bench_peers.google_step(cfg, batch, False, bench_peers.import_google())}
    built["ours"] = bench_peers.ours_step(cfg, batch, False)
    built[bench_peers.CLIPPED] = bench_peers.ours_step(cfg, batch, False, clip_norm=1.0)
    built[bench_peers.TRAINER] = bench_peers.trainer_step(cfg, batch)
    built[bench_peers.TRAINER_NO_CLIP] = bench_peers.trainer_step(cfg, batch, clip_norm=0.0)
    for fn in built.values():
        for _ in range(3):
            fn()
    root = tempfile.mkdtemp(prefix="update_overlap_")
    results = {name: [] for name in built}
    try:
        for _ in range(args.rounds):
            for name, fn in built.items():
                results[name].append(one_step(fn, tempfile.mkdtemp(dir=root), tf1=name == "google"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for name, values in results.items():
        med = [common.median([v[i] for v in values]) for i in range(6)]
        rows.append([name, "%.1f" % med[1], "%.1f" % med[0], "%.0f" % med[2], "%.0f" % med[3],
                     "%.1f of %.1f" % (med[4], med[5]), "%.1f" % (med[1] - med[0])])
        print(rows[-1], flush=True)
    table = common.markdown_table(
        ["step", "step (ms, profiled)", "backward ends (ms)", "update ops", "update ops started before backward ends",
         "update op time before backward ends (ms)", "after backward (ms)"], rows)
    notes = ("BERT %s, batch %d x seq %d, %d masked positions, MLM+NSP, fp32, XLA off; one profiled step per "
             "candidate per round, alternated, medians of %d rounds (tf.profiler.experimental trace). Update ops: "
             "the optimizer's name scope (AdamW/ for ours and the trainer; every root op for Google's graph, "
             "clipping included)." % (args.size, args.batch, args.seq_len, args.predictions, args.rounds))
    command = "python benchmarks/update_overlap.py --size=%s --rounds=%d" % (args.size, args.rounds)
    if args.no_write:
        print(notes + "\n\n" + table)
    else:
        common.publish("Optimizer update against backward: what a whole-gradient decision costs", command, notes,
                       table, common.machine_line(tf))


if __name__ == "__main__":
    main()
