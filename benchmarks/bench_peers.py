"""Training throughput vs peers: our BERT pretrainer against Hugging Face transformers'
TFBertForPreTraining and Google's reference modeling.py (bert-tensorflow, tf.compat.v1).

Same architecture (BERT small or base, vocab 30522, dropout 0.1), same batch,
sequence length and masked positions, MLM + NSP losses, one optimizer step
(forward, backward, Adam-style update) per call. All candidates run in one
process on the same TensorFlow build and are timed in alternation (A, B, C, A,
B, C, ...); the table reports the ratio of medians and, per round, the ratio of
two candidates' times in that round (median and range), which a slow drift of
the machine's speed moves less.

* ours:      our Pretrainer; step = tf.function(jit_compile=XLA) of loss + gradients + the trainer's
             AdamW (hvd_pretrain.train.optimizers.AdamWeightDecay, as make_optimizer builds it;
             --ours_optimizer=keras: Keras' AdamW, what this row measured before).
* ours (clip 1.0): the same step, clipping by global norm 1.0 first (as run_pretraining and the trainer).
* ours (trainer step): hvd_pretrain.train.accumulate.AccumulatingStep at accumulation 1 (the trainer's
             step: counts, clipping, the skip decision, the device window; one host read per call).
* ours (trainer step, clip off): the same at clip_norm 0, which still takes the global norm for the
             skip decision but does not scale the gradients: the trainer's own cost over the bare step.
* hf:        transformers TFBertForPreTraining, same step shape. Its MLM head runs on every
             position, ours and Google's on the masked ones only (see the FLOP column).
* google:    bert-tensorflow's BertModel + run_pretraining's MLM/NSP heads + its
             AdamWeightDecayOptimizer in a tf.compat.v1 Session (XLA: global_jit_level ON_1).

transformers 5 has no TensorFlow models; the script uses transformers 4.x from
$HVD_PRETRAIN_CACHE/bench-peers when the installed one lacks TFBertForPreTraining:

  python -m pip install --target ~/.cache/hvd-pretrain/bench-peers --no-deps \\
      "transformers==4.49.0" "huggingface-hub>=0.26,<1.0" "tokenizers>=0.21,<0.22"
  python benchmarks/bench_peers.py --sizes=small,base --xla=off,on
"""

import argparse
import os
import subprocess
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
from hvd_pretrain.models import build_pretrainer, flops, preset  # noqa: E402
from hvd_pretrain.tfcompat import keras, tf  # noqa: E402
from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator  # noqa: E402
from hvd_pretrain.train.config import TrainConfig  # noqa: E402
from hvd_pretrain.train.optimization import make_optimizer  # noqa: E402
from hvd_pretrain.train.optimizers import apply_clipped  # noqa: E402

PEERS_DIR = os.path.join(os.environ.get("HVD_PRETRAIN_CACHE", os.path.expanduser("~/.cache/hvd-pretrain")),
                         "bench-peers")


def import_hf():
    try:
        from transformers import BertConfig, TFBertForPreTraining
        return BertConfig, TFBertForPreTraining
    except ImportError:
        pass
    if os.path.isdir(PEERS_DIR):
        sys.path.insert(0, PEERS_DIR)
        for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")
                     or m.startswith("huggingface_hub") or m.startswith("tokenizers")]:
            del sys.modules[name]
        from transformers import BertConfig, TFBertForPreTraining
        return BertConfig, TFBertForPreTraining
    sys.exit("error: transformers with TensorFlow models not found; install it into %s (see --help)" % PEERS_DIR)


def import_google():
    """bert-tensorflow's modeling.py, with the one TF1 piece TF2 lacks (tf.contrib.layers.layer_norm)."""
    v1 = tf.compat.v1

    def layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
        with v1.variable_scope(scope, "LayerNorm", [inputs]):
            depth = inputs.shape[-1:]
            offset = v1.get_variable("beta", depth, initializer=v1.zeros_initializer())
            scale = v1.get_variable("gamma", depth, initializer=v1.ones_initializer())
            mean, variance = tf.nn.moments(inputs, [-1], keepdims=True)
            return tf.nn.batch_normalization(inputs, mean, variance, offset, scale, 1e-12)

    if "tensorflow.contrib" not in sys.modules:
        contrib = types.ModuleType("tensorflow.contrib")
        contrib.layers = types.ModuleType("tensorflow.contrib.layers")
        contrib.layers.layer_norm = layer_norm
        sys.modules["tensorflow.contrib"] = contrib
        sys.modules["tensorflow.contrib.layers"] = contrib.layers
    from bert import modeling, optimization, run_pretraining
    return modeling, optimization, run_pretraining


def numpy_batch(cfg, args, seed=0):
    return {k: v.numpy() for k, v in common.synthetic_batch(tf, cfg.vocab_size, args.batch, args.seq_len,
                                                            args.predictions, seed).items()}


def ours_step(cfg, batch, xla, optimizer="trainer", clip_norm=0.0):
    """optimizer: "trainer" (our AdamWeightDecay), "keras" (Keras' AdamW) or an optimizer object;
    clip_norm > 0: clip by global norm before the update, as Google's run_pretraining (1.0) and the trainer."""
    model = build_pretrainer(cfg).build_for()
    if optimizer == "trainer":
        opt = make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0))
    elif optimizer == "keras":
        opt = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01, epsilon=1e-6)
    else:
        opt = optimizer
    features = {k: tf.constant(v) for k, v in batch.items()}

    @tf.function(jit_compile=xla)
    def step(features):
        with tf.GradientTape() as tape:
            sums = model.loss_sums(features, training=True)
            loss = (sums["mlm"] / tf.reduce_sum(features["masked_lm_weights"])
                    + sums["nsp"] / tf.cast(tf.shape(features["input_ids"])[0], tf.float32))
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        apply_clipped(opt, grads, model.trainable_variables, clip_norm)  # as the trainer clips
        return loss

    return lambda: float(step(features))


def trainer_step(cfg, batch, xla=False, clip_norm=1.0):
    step = AccumulatingStep(build_pretrainer(cfg).build_for(), make_optimizer(TrainConfig(num_train_steps=10 ** 6, warmup_steps=0)),
                            LocalCommunicator(), 1, clip_norm=clip_norm, jit_compile=xla)
    features = [{k: tf.constant(v) for k, v in batch.items()}]
    step.build(features[0])  # as the trainer: the gradient groups follow the forward pass
    return lambda: step.step(features)


def hf_step(cfg, batch, xla, hf):
    BertConfig, TFBertForPreTraining = hf
    model = TFBertForPreTraining(BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size, hidden_act="gelu",
        hidden_dropout_prob=cfg.hidden_dropout, attention_probs_dropout_prob=cfg.attention_dropout,
        max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size))
    import numpy as np
    labels = np.full(batch["input_ids"].shape, -100, np.int32)
    np.put_along_axis(labels, batch["masked_lm_positions"], batch["masked_lm_ids"], axis=1)
    inputs = {"input_ids": tf.constant(batch["input_ids"]), "attention_mask": tf.constant(batch["input_mask"]),
              "token_type_ids": tf.constant(batch["segment_ids"]), "labels": tf.constant(labels),
              "next_sentence_label": tf.constant(batch["next_sentence_labels"][:, 0])}
    model(inputs, training=False)
    opt = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01, epsilon=1e-6)

    @tf.function(jit_compile=xla)
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(inputs, training=True).loss)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return lambda: float(step(inputs))


def google_step(cfg, batch, xla, google):
    modeling, optimization, run_pretraining = google
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        bert_config = modeling.BertConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size, hidden_act="gelu",
            hidden_dropout_prob=cfg.hidden_dropout, attention_probs_dropout_prob=cfg.attention_dropout,
            max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size)
        t = {k: tf.constant(v) for k, v in batch.items()}
        model = modeling.BertModel(config=bert_config, is_training=True, input_ids=t["input_ids"],
                                   input_mask=t["input_mask"], token_type_ids=t["segment_ids"])
        mlm_loss = run_pretraining.get_masked_lm_output(
            bert_config, model.get_sequence_output(), model.get_embedding_table(), t["masked_lm_positions"],
            t["masked_lm_ids"], t["masked_lm_weights"])[0]
        nsp_loss = run_pretraining.get_next_sentence_output(
            bert_config, model.get_pooled_output(), t["next_sentence_labels"])[0]
        train_op = optimization.create_optimizer(mlm_loss + nsp_loss, 1e-4, 10 ** 6, 0, False)
        init = v1.global_variables_initializer()
    config = v1.ConfigProto()
    if xla:
        config.graph_options.optimizer_options.global_jit_level = v1.OptimizerOptions.ON_1
    session = v1.Session(graph=graph, config=config)
    session.run(init)
    return lambda: session.run(train_op)


CLIPPED = "ours (clip 1.0)"
TRAINER = "ours (trainer step)"
TRAINER_NO_CLIP = "ours (trainer step, clip off)"


def paired(reference, values):
    """Median [min-max] over rounds of this candidate's time / the reference's time in the same round."""
    ratios = common.round_ratios(values, reference)
    return "%.2f [%.2f-%.2f]" % (common.median(ratios), ratios[0], ratios[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,base")
    common.add_batch_shape(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xla", default="off,on")
    parser.add_argument("--ours_optimizer", default="trainer", choices=["trainer", "keras"],
                        help="the bare step's optimizer: the trainer's AdamWeightDecay or Keras' AdamW")
    parser.add_argument("--busy", type=int, default=0, help="single-threaded CPU-bound processes running beside")
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=dict(os.environ, OMP_NUM_THREADS="1"))
            for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for p in busy:
            p.kill()


# One single-threaded CPU-bound process: a 384 x 384 float64 matmul in a loop.
BUSY_LOOP = "import numpy as np\na = np.random.rand(384, 384)\nwhile True:\n    a = a @ a; a /= np.abs(a).max()"


def run(args):
    hf, google = import_hf(), import_google()
    rows = []
    for size in args.sizes.split(","):
        cfg = preset(size)
        batch = numpy_batch(cfg, args)
        ours_flops = flops.training_flops_per_sequence(cfg, args.seq_len, args.predictions)
        hf_flops = flops.training_flops_per_sequence(cfg, args.seq_len, mlm_positions="all")
        for xla in [x == "on" for x in args.xla.split(",")]:
            # Google's graph first: Keras layers made inside a tf.compat.v1 Graph invalidate
            # Keras layers made before it.
            google_fn = google_step(cfg, batch, xla, google)
            candidates = {"ours": ours_step(cfg, batch, xla, args.ours_optimizer), "hf": hf_step(cfg, batch, xla, hf),
                          "google": google_fn}
            candidates[CLIPPED] = ours_step(cfg, batch, xla, args.ours_optimizer, clip_norm=1.0)
            candidates[TRAINER] = trainer_step(cfg, batch, xla)
            candidates[TRAINER_NO_CLIP] = trainer_step(cfg, batch, xla, clip_norm=0.0)
            times = common.alternate(candidates, args.rounds, warmup=2)
            ours = args.batch / common.median(times["ours"])
            trainer = args.batch / common.median(times[TRAINER])
            for name, values in times.items():
                eps = args.batch / common.median(values)
                per_seq = hf_flops if name == "hf" else ours_flops
                rows.append([size, "on" if xla else "off", name, "%.2f" % eps, "%.1f" % (per_seq / 1e9),
                             "%.2f" % (ours / eps), paired(times["ours"], values),
                             "%.2f" % (trainer / eps), paired(times[TRAINER], values)])
                print(rows[-1], flush=True)
    table = common.markdown_table(["size", "XLA", "implementation", "examples/s", "train GFLOP/seq",
                                   "ours / this", "ours / this, rounds", "trainer / this",
                                   "trainer / this, rounds"], rows)
    notes = ("BERT %s, batch %d x seq %d, %d masked positions, MLM+NSP, one optimizer step per call, fp32; "
             "alternating candidates, medians of %d rounds; ours uses the %s optimizer (`ours (clip 1.0)`: "
             "the same step clipping by global norm 1.0 as Google's run_pretraining and the trainer do); "
             "`trainer` is the trainer's step at accumulation 1 (clip 1.0; `clip off`: clip_norm 0); `/ this` is the ratio of medians, `rounds` "
             "the median and range of the per-round ratios (each round runs every candidate once, "
             "back to back); %d single-threaded CPU-bound process(es) running beside. transformers %s."
             % (args.sizes, args.batch, args.seq_len, args.predictions, args.rounds, args.ours_optimizer, args.busy,
                sys.modules["transformers"].__version__))
    command = "python benchmarks/bench_peers.py " + " ".join(sys.argv[1:])
    if args.no_write:
        print(table)
    else:
        common.publish("Training throughput vs peers", command, notes, table, common.machine_line(tf))


if __name__ == "__main__":
    main()
