"""Held-out evaluation: exact over any world size, and invisible to training.

The eval set is the first --eval_examples records of the eval shards in file order
(statically masked, so every evaluation sees the same targets). Record i goes to rank
i mod world: every rank evaluates a disjoint slice. Each rank adds the model's loss sums,
correct counts and target counts (train/eval_metrics.py) in float64; one allreduce (Sum)
makes them global, and every metric is a ratio of global sums. The result does not
depend on the world size or the batch size (up to float32 rounding inside a batch).

The forward passes run with training=False (no dropout); ELECTRA's generator samples with
a stateless seed per record (its index), so evaluating consumes no random state and
training after an evaluation is bit-identical to training without one.

    resolve_eval(...)          rank 0 at start-up: the eval data, the schedule, --keep_best
    Evaluator(...).run()       one evaluation -> {metric: value}
    PeriodicEvaluation         the trainer's hook: at the start, every N steps, at the end;
                               eval records in metrics.jsonl, eval/* in TensorBoard, keep-best
"""

import os
import time

import numpy as np

from hvd_pretrain.data.shards import list_shards, read_manifest
from hvd_pretrain.data.tfrecord import decode_example, iter_records
from hvd_pretrain.errors import ConfigError, DataError
from hvd_pretrain.models import family
from hvd_pretrain.tfcompat import tf
from hvd_pretrain.train.eval_metrics import PREFIX, check_metric_available, metrics_from_sums, parse_keep_best

SAMPLING_SEED = 20200  # ELECTRA's per-record sampling seed is (record index, SAMPLING_SEED)
EVAL_DIR = "eval"  # the held-out split inside a data dir (hvd-data create --eval_fraction)


def default_eval_dir(data_dir):
    """<data_dir>/eval when it holds shards, else None."""
    candidate = os.path.join(data_dir or "", EVAL_DIR)
    if data_dir and os.path.isdir(candidate):
        try:
            list_shards(candidate)
            return candidate
        except DataError:
            return None
    return None


def eval_source(eval_dir, model_config, fallback_seq, fallback_predictions, flag="--eval_data_dir"):
    """{data_dir, files, max_seq_length, max_predictions} of statically masked eval data; raises UsageError."""
    if not os.path.exists(eval_dir):
        raise DataError("%s=%s does not exist; give a directory of statically masked shards" % (flag, eval_dir))
    files = list_shards(eval_dir)
    for record in iter_records(files[0], check_crc=False):
        if "word_starts" in decode_example(record):
            raise DataError("%s=%s is stored unmasked (--masking=dynamic); evaluation needs fixed targets: make"
                            " held-out data with hvd-data create --eval_fraction (its eval/ is always static)"
                            % (flag, eval_dir))
        break
    manifest = read_manifest(eval_dir, missing_ok=True) or {}
    made = manifest.get("config") or {}
    seq = made.get("max_seq_length") or fallback_seq
    predictions = made.get("max_predictions_per_seq") or fallback_predictions
    if seq > model_config.max_position_embeddings:
        raise ConfigError("%s=%s has sequences of %d tokens, more than the model's max_position_embeddings=%d"
                          % (flag, eval_dir, seq, model_config.max_position_embeddings))
    vocab = (manifest.get("tokenizer") or {}).get("vocab_size")
    if vocab and vocab != model_config.vocab_size:
        raise DataError("%s=%s was tokenized with a %d-piece vocab but the model has %d; evaluate on data made"
                        " with the model's vocab" % (flag, eval_dir, vocab, model_config.vocab_size))
    objective = made.get("sentence_objective")
    if objective and model_config.family != "electra" and model_config.sentence_objective not in ("none", objective):
        raise DataError("%s=%s carries %s labels but the model predicts %s" % (flag, eval_dir, objective,
                                                                                model_config.sentence_objective))
    return {"data_dir": eval_dir, "files": files, "max_seq_length": int(seq), "max_predictions": int(predictions)}


def resolve_eval(cfg, model_config, data_dir, seq, predictions):
    """The evaluation a training run does, as a dict (None: no evaluation); raises UsageError.

    --eval_every=-1 evaluates every --save_checkpoints_steps when eval data is there.
    """
    eval_dir = cfg.eval_data_dir or default_eval_dir(data_dir)
    every = cfg.eval_every
    if every == -1:
        every = cfg.save_checkpoints_steps if eval_dir else 0
    metric, direction = parse_keep_best(cfg.keep_best)
    if every == 0:
        if metric:
            raise ConfigError("--keep_best=%s needs evaluation: give held-out data (hvd-data create --eval_fraction,"
                              " or --eval_data_dir) and --eval_every" % cfg.keep_best)
        return None
    if not eval_dir:
        raise ConfigError("--eval_every=%d needs held-out data, but %s has no eval/ split; make the data with"
                          " hvd-data create --eval_fraction=0.01, or give --eval_data_dir" % (every, data_dir))
    if metric:
        check_metric_available(metric, family.objectives(model_config))
    source = eval_source(eval_dir, model_config, seq, predictions)
    return dict(source, every=int(every), examples=int(cfg.eval_examples), keep_best=metric, direction=direction)


class Evaluator:
    """Evaluates `model` on `source` (from eval_source) over all Horovod ranks; `run()` -> metrics."""

    def __init__(self, model, hvd, source, batch_size, examples=0):
        from hvd_pretrain.models.features import dummy_features

        self.model, self.hvd, self.source = model, hvd, source
        self.batch_size, self.examples = int(batch_size), int(examples)
        self.objectives = tuple(model.objectives)
        self.weights = dict(model.loss_weights)
        dummy = dummy_features(1, source["max_seq_length"], source["max_predictions"], masked_weight=1.0)
        dummy["sampling_seeds"] = tf.zeros([1, 2], tf.int32)
        self.sum_names = sorted(model.loss_sums(dummy, training=False))  # the same order on every rank
        self._step = tf.function(self._sums, reduce_retracing=True)

    def _sums(self, features):
        sums = self.model.loss_sums(features, training=False)
        counts = self.model.target_counts(features)
        return ([tf.cast(sums[k], tf.float32) for k in self.sum_names]
                + [tf.cast(counts[k], tf.float32) for k in self.objectives])

    def dataset(self, rank, world):
        """This rank's slice: records i with i mod world == rank, of the first `examples` (0: all)."""
        from hvd_pretrain.data.pipeline import static_feature_spec

        spec = static_feature_spec(self.source["max_seq_length"], self.source["max_predictions"])
        ds = tf.data.TFRecordDataset(self.source["files"])
        if self.examples:
            ds = ds.take(self.examples)
        ds = ds.enumerate().shard(world, rank).batch(self.batch_size)

        def parse(index, records):
            features = {k: (tf.cast(v, tf.int32) if v.dtype == tf.int64 else v)
                        for k, v in tf.io.parse_example(records, spec).items()}
            index = tf.cast(index, tf.int32)
            features["sampling_seeds"] = tf.stack([index, tf.fill(tf.shape(index), SAMPLING_SEED)], axis=1)
            return features

        return ds.map(parse).prefetch(2)

    def run(self):
        """One evaluation on every rank (a collective: every rank must call it); returns the metrics."""
        from hvd_pretrain.data.pipeline import checked_iterator

        start = time.time()
        totals = np.zeros(len(self.sum_names) + len(self.objectives) + 1, np.float64)
        for features in checked_iterator(self.dataset(self.hvd.rank(), self.hvd.size()), self.source["files"]):
            values = self._step(features)
            totals[:-1] += np.array([float(v) for v in values], np.float64)
            totals[-1] += int(features["input_ids"].shape[0])
        if self.hvd.size() > 1:
            totals = self.hvd.allreduce(tf.constant(totals, tf.float64), op=self.hvd.Sum, name="eval_sums").numpy()
        n = len(self.sum_names)
        sums = dict(zip(self.sum_names, totals[:n]))
        counts = dict(zip(self.objectives, totals[n:-1]))
        if totals[-1] == 0:
            raise DataError("the eval data in %s holds no record" % self.source["data_dir"])
        return metrics_from_sums(sums, counts, self.objectives, self.weights, totals[-1], time.time() - start)


def summary_line(step, metrics):
    keys = [k for k in ("loss", "mlm_perplexity", "mlm_accuracy", "nsp_accuracy", "sop_accuracy", "rtd_accuracy",
                        "rtd_precision", "rtd_recall") if k in metrics]
    values = " | ".join("%s %s" % (k, "-" if metrics[k] is None else "%.4g" % metrics[k]) for k in keys)
    return "eval step %d | %s | %d examples in %.1fs" % (step, values,
                                                         metrics["examples"], metrics["seconds"])


class PeriodicEvaluation:
    """The trainer's evaluation hook (every rank calls it at the same steps)."""

    def __init__(self, session, setup):
        self.session, self.setup = session, setup
        self.every = setup["every"]
        self.evaluator = Evaluator(session.model, session.hvd, setup, session.cfg.per_rank_batch, setup["examples"])
        self.keeper = None
        if setup.get("keep_best") and session.is_root:
            from hvd_pretrain.train.checkpoint import BestCheckpoint
            self.keeper = BestCheckpoint(session.rundir.best_checkpoints, session.model, session.optimizer,
                                         session.model_config, setup["keep_best"], setup["direction"])
        self.last_step = None

    def due(self, step, last):
        return step != self.last_step and (last or step % self.every == 0)

    def evaluate(self, step, logger, state=None):
        """Evaluate, record (metrics.jsonl, TensorBoard), and keep the checkpoint when it is the best."""
        metrics = self.evaluator.run()
        self.last_step = step
        session = self.session
        logger.event("eval", step, eval=metrics, eval_data=self.setup["data_dir"])
        writer = session.tensorboard_writer()
        if writer is not None:
            with writer.as_default(step=int(step)):
                for key, value in metrics.items():
                    if value is not None:
                        tf.summary.scalar(PREFIX + key, float(value))
            writer.flush()
        session.say(summary_line(step, metrics))
        if self.keeper is not None and state is not None:
            path = self.keeper.offer(step, metrics, state)
            if path:
                logger.event("best_checkpoint", step, path=path, metric=PREFIX + self.keeper.metric,
                             value=metrics[self.keeper.metric])
        return metrics


def periodic_evaluation(session):
    """The session's PeriodicEvaluation, or None when this run does not evaluate."""
    setup = session.resolved.get("eval")
    return PeriodicEvaluation(session, setup) if setup else None
