"""Our CPU kernels (hvd_pretrain/kernels) on and off: the same step, built twice in one process, alternated.

Each pair is one step built with the kernels and once with TensorFlow's stock ops instead
(HVD_PRETRAIN_FUSED_KERNELS=0 while it is traced), then timed in alternation (`common.alternate`):

* trainer:     the trainer's step at accumulation 1, clip 1.0 (AccumulatingStep, as bench_peers.py);
* bare:        bench_peers' bare step (loss, gradients, AdamWeightDecay, no clipping);
* update:      the optimizer update alone on the model's variables, with the clip factor
               (apply_gradients(grad_scale=)), from fixed gradients;
* xent:        the MLM cross-entropy alone, forward and backward, at [batch x predictions, vocab] logits;
* gelu:        GELU alone, forward and backward, at the feed-forward layer's [batch x seq, intermediate].

Reported: the median time of each, and kernels-on speed over kernels-off as the ratio of medians and as
the median and range of the per-round ratios.

  python benchmarks/kernels_ab.py --size=small --batch=8 --rounds=11
  python benchmarks/kernels_ab.py --size=tiny --batch=32 --rounds=11
  python benchmarks/kernels_ab.py --size=tiny --vocab_size=8000 --batch=32 --rounds=15   # hvd-pretrain's default run
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_peers  # noqa: E402
import common  # noqa: E402
from hvd_pretrain import kernels  # noqa: E402
from hvd_pretrain.models import build_pretrainer, ops, preset  # noqa: E402
from hvd_pretrain.tfcompat import tf  # noqa: E402
from hvd_pretrain.train.config import TrainConfig  # noqa: E402
from hvd_pretrain.train.optimization import make_optimizer  # noqa: E402
from hvd_pretrain.train.optimizers import clip_factor  # noqa: E402


def built_with(on, make):
    """make() -> a callable, traced (called once) with our kernels on or off."""
    previous = os.environ.get(kernels.ENV_SWITCH)
    os.environ[kernels.ENV_SWITCH] = "1" if on else "0"
    try:
        fn = make()
        fn()
        return fn
    finally:
        if previous is None:
            del os.environ[kernels.ENV_SWITCH]
        else:
            os.environ[kernels.ENV_SWITCH] = previous


def update_step(cfg):
    model = build_pretrainer(cfg).build_for()
    variables = model.trainable_variables
    optimizer = make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0))
    optimizer.build(variables)
    grads = [tf.random.stateless_normal(v.shape, seed=[i, 1]) * 1e-3 for i, v in enumerate(variables)]

    @tf.function
    def step():
        optimizer.apply_gradients(zip(grads, variables), grad_scale=clip_factor(tf.linalg.global_norm(grads), 1.0))
        return optimizer.iterations

    return lambda: int(step())


def xent_step(cfg, rows):
    logits = tf.random.stateless_normal([rows, cfg.vocab_size], seed=[1, 2]) * 3.0
    labels = tf.random.stateless_uniform([rows], seed=[3, 4], maxval=cfg.vocab_size, dtype=tf.int32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss, hits = ops.cross_entropy_and_hits(logits, labels)
        return loss + hits + tf.reduce_sum(tape.gradient(loss, logits)[:, 0])

    return lambda: float(step())


def gelu_step(cfg, tokens):
    x = tf.random.stateless_normal([tokens, cfg.intermediate_size], seed=[5, 6]) * 2.0
    upstream = tf.random.stateless_normal([tokens, cfg.intermediate_size], seed=[7, 8])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ops.gelu(x)
        return tf.reduce_sum(y[:, 0]) + tf.reduce_sum(tape.gradient(y, x, output_gradients=upstream)[:, 0])

    return lambda: float(step())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    common.add_batch_shape(parser)
    parser.add_argument("--vocab_size", type=int, default=0,
                        help="the model's vocabulary (default: the preset's; hvd-pretrain's own corpus makes 8000)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    if kernels.fused_adamw() is None or kernels.softmax_xent() is None or kernels.gelu() is None:
        sys.exit("error: our kernels are not available here (see the log line above); nothing to compare")
    cfg = preset(args.size, vocab_size=args.vocab_size or None)
    batch = bench_peers.numpy_batch(cfg, args)
    makers = {"trainer": lambda: bench_peers.trainer_step(cfg, batch),
              "bare": lambda: bench_peers.ours_step(cfg, batch, False),
              "update": lambda: update_step(cfg),
              "xent": lambda: xent_step(cfg, args.batch * args.predictions),
              "gelu": lambda: gelu_step(cfg, args.batch * args.seq_len)}
    candidates = {}
    for name, make in makers.items():
        candidates[name + ", kernels"] = built_with(True, make)
        candidates[name + ", stock ops"] = built_with(False, make)
    times = common.alternate(candidates, args.rounds, warmup=2)
    rows = []
    for name in makers:
        on, off = times[name + ", kernels"], times[name + ", stock ops"]
        ratios = common.round_ratios(off, on)
        rows.append([name, "%.1f" % (1e3 * common.median(on)), "%.1f" % (1e3 * common.median(off)),
                     "%.3f" % (common.median(off) / common.median(on)),
                     "%.3f [%.2f-%.2f]" % (common.median(ratios), ratios[0], ratios[-1])])
        print(rows[-1], flush=True)
    table = common.markdown_table(["step", "kernels (ms)", "stock ops (ms)", "speed-up", "speed-up, rounds"], rows)
    notes = ("BERT %s (vocabulary %d), batch %d x seq %d, %d masked positions, fp32. Each step built once with our CPU kernels "
             "and once with TensorFlow's stock ops, alternated, medians of %d rounds; `speed-up` is stock time "
             "over kernel time (ratio of medians), `rounds` the median and range of the per-round ratios. "
             "`update`: AdamW with the clip factor on the model's variables; `xent`: cross-entropy and hits, "
             "forward and backward, at [%d, %d] logits; `gelu`: GELU forward and backward at [%d, %d]."
             % (args.size, cfg.vocab_size, args.batch, args.seq_len, args.predictions, args.rounds,
                args.batch * args.predictions, cfg.vocab_size, args.batch * args.seq_len, cfg.intermediate_size))
    command = "python benchmarks/kernels_ab.py " + " ".join(sys.argv[1:])
    if args.no_write:
        print(table)
    else:
        common.publish("Our CPU kernels on and off, BERT-%s" % args.size, command, notes, table,
                       common.machine_line(tf))


if __name__ == "__main__":
    main()
