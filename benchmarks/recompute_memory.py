"""Peak memory and step time of one trainer step with and without activation recompute.

    python benchmarks/recompute_memory.py                      # BERT-base, seq 512, batch 8 (the real figures)
    python benchmarks/recompute_memory.py --preset=tiny --seq=64 --batch=2 --steps=2   # a smoke run

Each setting (--recompute=none, then block) runs in its own process, so one's
memory cannot hide in the other's: build BERT (MLM + NSP), AdamW and the fp32
accumulators, record the resident set size (the baseline: weights, optimizer
slots, accumulators, TensorFlow itself), run `--warmup` and `--steps` trainer steps
(hvd_pretrain.train.accumulate.AccumulatingStep.run, accumulation 1, one rank)
and record the peak resident set size (getrusage ru_maxrss) and, on a GPU,
TensorFlow's peak device memory. The activations are what recompute saves, so
the table gives the peak above the baseline too: the activations plus the traced
step and what the CPU allocator keeps (a few hundred MB, alike in both settings;
the resident set does not shrink after a step, so no later baseline is taken).
Dropout stays at the preset's rate: recompute reproduces its masks exactly
(ops.seeded_dropout).

Prints one JSON line per setting and a last line with the ratios (block / none).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rss_mb():
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def measure(args):
    """One setting in this process -> dict of the figures."""
    import numpy as np
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.models.features import dummy_features
    from hvd_pretrain.tfcompat import keras, tf
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    from hvd_pretrain.train.config import TrainConfig
    from hvd_pretrain.train.optimization import make_optimizer
    from hvd_pretrain.train.window import to_host

    keras.utils.set_random_seed(1)
    config = preset(args.preset, max_position_embeddings=max(512, args.seq))
    model = build_pretrainer(config, recompute=args.recompute)
    features = dummy_features(args.batch, args.seq, args.preds, masked_weight=1.0)
    rng = np.random.RandomState(0)
    features["input_ids"] = tf.constant(rng.randint(5, config.vocab_size, (args.batch, args.seq)), tf.int32)
    # Variables, slots and accumulators from a one-token batch, so that the baseline holds no activations.
    small = dummy_features(1, 8, 1, masked_weight=1.0)
    model.loss_sums(small, training=False)
    optimizer = make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0))
    optimizer.build(model.trainable_variables)
    step = AccumulatingStep(model, optimizer, LocalCommunicator(), 1).build(small)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    baseline = rss_mb()  # weights, slots, accumulators, TensorFlow; no step yet
    for _ in range(args.warmup):
        step.run([features])
    to_host(optimizer.iterations)
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    start = time.perf_counter()
    for _ in range(args.steps):
        step.run([features])
    to_host(optimizer.iterations)  # wait for the last step
    seconds = (time.perf_counter() - start) / args.steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux
    out = {"recompute": args.recompute, "preset": args.preset, "seq": args.seq, "batch": args.batch,
           "steps": args.steps, "step_seconds": seconds, "baseline_rss_mb": baseline, "peak_rss_mb": peak,
           "peak_above_baseline_mb": peak - baseline}
    if gpu:
        out["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--preds", type=int, default=20, help="masked positions per sequence (76 in BERT's phase 2)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    p.add_argument("--recompute", choices=("none", "block"), help=argparse.SUPPRESS)  # one setting, in-process
    args = p.parse_args()
    if args.recompute:
        if args.threads:
            from hvd_pretrain.tfcompat import tf
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        print(json.dumps(measure(args)), flush=True)
        return
    rows = {}
    for mode in ("none", "block"):
        cmd = [sys.executable, os.path.abspath(__file__), "--recompute=" + mode] + [
            "--%s=%s" % (k, getattr(args, k)) for k in ("preset", "seq", "preds", "batch", "steps", "warmup",
                                                         "threads")]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        rows[mode] = json.loads(result.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[mode]), flush=True)
    none, block = rows["none"], rows["block"]
    ratios = {"load_average": os.getloadavg()[0],
              "peak_rss_block_over_none": block["peak_rss_mb"] / none["peak_rss_mb"],
              "peak_above_baseline_block_over_none": block["peak_above_baseline_mb"]
              / max(none["peak_above_baseline_mb"], 1e-9),
              "step_time_block_over_none": block["step_seconds"] / none["step_seconds"]}
    if "gpu_peak_mb" in none:
        ratios["gpu_peak_block_over_none"] = block["gpu_peak_mb"] / none["gpu_peak_mb"]
    print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    main()
