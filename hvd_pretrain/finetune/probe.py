"""Fine-tune a pre-trained encoder on a classification task over several seeds; report accuracy and F1.

One Prober per model architecture: the classifier, its optimizer and the compiled steps are made
once and reused for every source (each checkpoint of a run, or a random initialisation) and every
seed. Before each run the encoder gets the source's weights again, the head a fresh initialisation
from the seed, and the optimizer's moments and step counter are zeroed, so runs are independent.

The recipe is BERT's (Devlin et al. 2019, 4.1; google-research/bert run_classifier.py): softmax
cross-entropy on the classifier's logits, AdamW with linear warmup and linear decay to 0, gradient
clipping, weight decay on everything but LayerNorm and biases, dropout on. Single process.
With freeze_encoder only the head is trained (BERT's feature-based approach, section 5.3): a linear
probe of the pooled [CLS] vector for BERT and ALBERT.
"""

import dataclasses
import math
import time

import numpy as np

from hvd_pretrain.models import build_pretrainer
from hvd_pretrain.models.classifier import SequenceClassifier, pretrainer_encoder
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train.optimization import WarmupPolynomialDecay
from hvd_pretrain.train.optimizers import AdamWeightDecay, apply_clipped

EVAL_BATCH = 64


def scores(predictions, labels, label_order):
    """accuracy, and F1: of the positive class for two labels ("1", else the second label), macro otherwise."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    accuracy = float(np.mean(predictions == labels)) if len(labels) else 0.0

    def f1_of(k):
        tp = float(np.sum((predictions == k) & (labels == k)))
        fp = float(np.sum((predictions == k) & (labels != k)))
        fn = float(np.sum((predictions != k) & (labels == k)))
        return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
    if len(label_order) == 2:
        positive = label_order.index("1") if "1" in label_order else 1
        return {"accuracy": accuracy, "f1": f1_of(positive)}
    return {"accuracy": accuracy, "f1": float(np.mean([f1_of(k) for k in range(len(label_order))]))}


def f1_name(label_order):
    if len(label_order) == 2:
        return "F1 of %r" % (label_order[label_order.index("1")] if "1" in label_order else label_order[1])
    return "macro F1"


def summarise(values):
    """{"mean", "std"} with the sample standard deviation (0 for one value)."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


class Prober:
    """Fine-tunes `config`'s architecture on one task; `run(source, seed)` -> scores of one seed."""

    def __init__(self, config, cfg, train, dev, label_order):
        self.cfg = cfg
        self.train = train
        self.dev = dev
        self.label_order = list(label_order)
        dropout = config.hidden_dropout if cfg.dropout < 0 else cfg.dropout
        if cfg.dropout >= 0:
            config = dataclasses.replace(config, hidden_dropout=cfg.dropout, attention_dropout=cfg.dropout)
        if cfg.freeze_encoder:  # a fixed feature extractor: no dropout inside it, only before the output layer
            config = dataclasses.replace(config, hidden_dropout=0.0, attention_dropout=0.0)
        self.config = config
        self.pretrainer = build_pretrainer(config).build_for(2, 8, 2)
        self.classifier = SequenceClassifier(pretrainer_encoder(self.pretrainer), len(self.label_order),
                                             dropout=dropout, initializer_range=config.initializer_range)
        self.classifier(train.batch([0])[0], training=False)
        self.steps = max(1, int(math.ceil(cfg.epochs * len(train) / cfg.batch_size)))
        warmup = int(round(cfg.warmup_proportion * self.steps))
        self.optimizer = AdamWeightDecay(
            learning_rate=WarmupPolynomialDecay(cfg.learning_rate, self.steps, warmup, end=0.0),
            weight_decay_rate=cfg.weight_decay)
        # Frozen encoder: only the head's variables get gradients and optimizer state.
        self.variables = self.classifier.head_variables() if cfg.freeze_encoder else self.classifier.trainable_variables
        self.optimizer.build(self.variables)
        spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_ids", "input_mask", "segment_ids")}
        self._train_step = tf.function(self._train_step_body,
                                       input_signature=[spec, tf.TensorSpec([None], tf.int32)])
        self._logits = tf.function(lambda f: self.classifier(f, training=False), input_signature=[spec])

    def _train_step_body(self, features, labels):
        with tf.GradientTape() as tape:
            logits = self.classifier(features, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        grads = tape.gradient(loss, self.variables)
        pairs = [(g, v) for g, v in zip(grads, self.variables) if g is not None]
        grads = [g for g, _ in pairs]
        apply_clipped(self.optimizer, grads, [v for _, v in pairs], self.cfg.clip_norm)
        return loss

    def _reset(self, source, seed):
        keras.utils.set_random_seed(seed)
        for v in pretrainer_encoder(self.pretrainer).variables:  # as built: the random-init baseline's weights
            leaf = v.name.split("/")[-1].split(":")[0]
            v.assign(tf.ones(v.shape) if leaf == "gamma" else tf.zeros(v.shape) if leaf in ("beta", "bias") else
                     tf.random.truncated_normal(v.shape, stddev=self.config.initializer_range))
        source.load(self.pretrainer)
        init = keras.initializers.TruncatedNormal(stddev=self.config.initializer_range, seed=seed)
        for v in self.classifier.head_variables():
            v.assign(init(v.shape) if "kernel" in v.name else tf.zeros(v.shape))
        slots = self.optimizer.variables
        for v in (slots() if callable(slots) else slots):  # moments and the step counter
            v.assign(tf.zeros_like(v))
        assert int(self.optimizer.iterations.numpy()) == 0

    def predict(self, split):
        out = []
        for start in range(0, len(split), EVAL_BATCH):
            features, _ = split.batch(range(start, min(start + EVAL_BATCH, len(split))))
            out.append(np.argmax(self._logits(features).numpy(), axis=-1))
        return np.concatenate(out) if out else np.zeros([0], np.int64)

    def run(self, source, seed):
        """Fine-tune from `source` with `seed`; {"seed", "accuracy", "f1", "train_loss", "steps", "seconds"}."""
        t0 = time.time()
        self._reset(source, seed)
        rng = np.random.RandomState(seed)
        order = np.concatenate([rng.permutation(len(self.train))
                                for _ in range(int(math.ceil(self.steps * self.cfg.batch_size / len(self.train))))])
        losses = []
        for step in range(self.steps):
            features, labels = self.train.batch(order[step * self.cfg.batch_size:(step + 1) * self.cfg.batch_size])
            losses.append(float(self._train_step(features, labels)))
        if not np.isfinite(losses).all():
            from hvd_pretrain.errors import TrainingError
            raise TrainingError("fine-tuning %s with seed %d reached a non-finite loss; lower --learning_rate"
                                % (source.label, seed))
        result = scores(self.predict(self.dev), self.dev.labels, self.label_order)
        tail = losses[-max(1, len(losses) // 10):]
        return dict(seed=int(seed), steps=self.steps, train_loss=float(np.mean(tail)),
                    seconds=round(time.time() - t0, 2), **result)


def probe(prober, source, seeds, say=None):
    """Every seed on one source: {"source", "step", "seeds": [...], "accuracy": {mean, std}, "f1": {...}}."""
    runs = []
    for seed in seeds:
        runs.append(prober.run(source, seed))
        if say:
            say("  %s seed %d: accuracy %.4f, F1 %.4f (%d steps, %.0f s)"
                % (source.label, seed, runs[-1]["accuracy"], runs[-1]["f1"], runs[-1]["steps"], runs[-1]["seconds"]))
    return {"source": source.label, "step": source.step, "seeds": runs,
            "accuracy": summarise([r["accuracy"] for r in runs]), "f1": summarise([r["f1"] for r in runs])}
