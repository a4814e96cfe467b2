"""hvd-pretrain: pre-train a BERT, ALBERT or ELECTRA encoder.

    horovodrun -np 2 hvd-pretrain                      # tiny BERT on the embedded corpus
    horovodrun -np 32 -H ... hvd-pretrain --flagfile=jobs/bert_base_phase1.cfg
    hvd-pretrain --input_files=corpus/*.txt --preset=mini   # one process, world size 1

Flags can come from a file: --flagfile=PATH (one --flag=value per line).
TensorFlow and Horovod are imported only after the flags are validated, so
--help and flag errors are instant.
"""

import os
import sys

from absl import app, flags

from hvd_pretrain.cli import options
from hvd_pretrain.cli.entry import entry
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.errors import ConfigError, UsageError, quoted
from hvd_pretrain.models.config import FAMILIES, PRESETS, ModelConfig, preset
from hvd_pretrain.train.config import TrainConfig
from hvd_pretrain.train.spec import RunSpec, Source

FLAGS = flags.FLAGS

DEFAULT_PRESETS = {"bert": "tiny", "albert": "albert-tiny", "electra": "electra-tiny"}
# The data options hvd-pretrain takes (when it builds the data, and to check data it is given).
DATA_OPTIONS = ("max_seq_length", "max_predictions_per_seq", "dupe_factor", "num_shards", "seed", "eval_fraction",
                "eval_documents")
# Model options that override the preset's (or the public checkpoint's) values.
MODEL_OVERRIDES = ("hidden_dropout", "attention_dropout", "max_position_embeddings", "sharing", "embedding_size",
                   "sentence_objective")

flags.DEFINE_enum("model", "bert", list(FAMILIES), "Model family.")
flags.DEFINE_string("preset", "", "Model size preset (default: tiny of the family). See hvd_pretrain/models/config.py.")
flags.DEFINE_string("input_files", "", "Corpus files (comma-separated, globs allowed): text with one sentence per"
                    " line and a blank line between documents, JSON Lines (field 'text') or Parquet (column"
                    " 'text'); gzip, bz2, xz or zstd compressed or not. Default: the embedded corpus.")
flags.DEFINE_string("data_dir", "", "Existing TFRecord shards (hvd-data create, or Google's"
                    " create_pretraining_data.py output). Overrides --input_files. A weighted mix of corpora:"
                    " DIR:WEIGHT,DIR:WEIGHT (e.g. wiki:0.7,books:0.3).")
flags.DEFINE_string("vocab_dir", "", "Existing vocab directory (spm.model or vocab.txt).")
flags.DEFINE_integer("vocab_size", 8000, "SentencePiece vocab size when a vocab is trained; must match the data.")
flags.DEFINE_string("init_from", "", "Continue pre-training from a public checkpoint: a transformers directory"
                    " (config.json + weights) or a Google TF1 checkpoint (bert_model.ckpt + bert_config.json). The"
                    " model config and vocab come from it; --preset is ignored.")
flags.DEFINE_string("init_from_generator", "", "With --init_from and --model=electra: the generator's directory.")
options.define(TrainConfig, FLAGS, defaults={"run_dir": os.environ.get("HVD_PRETRAIN_RUN_DIR", "runs/default")})
options.define(DataConfig, FLAGS, only=DATA_OPTIONS)
options.define(ModelConfig, FLAGS, only=MODEL_OVERRIDES, override=True)
flags.DEFINE_integer("gpus_per_node", 8, "For the --dry_run prediction with --gpu_type.")
flags.DEFINE_string("interconnect", "nvlink", "For the --dry_run prediction: intra-node link (nvlink, pcie).")
flags.DEFINE_string("network", "infiniband", "For the --dry_run prediction: inter-node network.")
flags.DEFINE_integer("world_size", 0, "For --dry_run: the number of ranks to plan for (0: from the launcher).")
flags.DEFINE_bool("dry_run", False, "Print the resolved configuration and batch plan, then exit.")
flags.DEFINE_bool("eval_only", False, "Evaluate a model on held-out data instead of training: --checkpoint, --init_from"
                  " or the run's newest checkpoint, on --eval_data_dir or --data_dir. Prints a table, writes JSON.")
flags.DEFINE_string("checkpoint", "", "With --eval_only: a checkpoint dir, a checkpoints/ dir (its newest; checkpoints/"
                    "best for the --keep_best one) or a run dir.")
flags.DEFINE_string("eval_output", "", "With --eval_only: the JSON file to write (default: <run dir>/eval/<ckpt-N>.json).")


def run_spec():
    """The RunSpec (train/spec.py) the flags describe; raises ConfigError or DataError."""
    family = FLAGS.model
    name = FLAGS.preset or DEFAULT_PRESETS[family]
    overrides = options.read(ModelConfig, FLAGS, MODEL_OVERRIDES)
    if FLAGS.init_from:
        from hvd_pretrain.export.importers import config_from_pretrained
        model = config_from_pretrained(FLAGS.init_from, FLAGS.init_from_generator or None, **overrides)
        family = model.family
    else:
        model = preset(name, vocab_size=FLAGS.vocab_size, **overrides)
    if model.family != family:
        matching = ", ".join(n for n, values in PRESETS.items() if values["family"] == family)
        raise ConfigError("--preset=%s is a %s preset but --model=%s; pick one of the %s presets: %s"
                          % (name, model.family, family, family, matching))
    data_values = options.read(DataConfig, FLAGS, DATA_OPTIONS)
    data = DataConfig(sentence_objective=model.sentence_objective, **data_values).validate()
    train = TrainConfig(max_seq_length=data.max_seq_length, max_predictions_per_seq=data.max_predictions_per_seq,
                        **options.read(TrainConfig, FLAGS, {f.name for f, _, _ in TrainConfig.options()})).validate()
    if data.max_seq_length > model.max_position_embeddings:
        raise ConfigError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d; lower it or raise"
                          " --max_position_embeddings" % (data.max_seq_length, model.max_position_embeddings))
    vocab_dir = FLAGS.vocab_dir
    if FLAGS.init_from and not vocab_dir:
        from hvd_pretrain.export.importers import pretrained_vocab
        vocab_dir = pretrained_vocab(FLAGS.init_from) or ""
        vocab_dir = _extended_data_vocab(FLAGS.data_dir, vocab_dir) or vocab_dir
    explicit = {"vocab_size"} if FLAGS["vocab_size"].present else set()
    explicit |= options.present(DataConfig, FLAGS, DATA_OPTIONS)
    source = Source(input_files=FLAGS.input_files, data_dir=FLAGS.data_dir, vocab_dir=vocab_dir,
                    init_from=FLAGS.init_from, init_from_generator=FLAGS.init_from_generator,
                    vocab_size=FLAGS.vocab_size, explicit=tuple(sorted(explicit)))
    return RunSpec(model, data, train, source)


def _extended_data_vocab(data_dir, checkpoint_vocab):
    """The vocab of the data in `data_dir` when it extends the checkpoint's (hvd-data vocab --extend), else ""."""
    if not (data_dir and checkpoint_vocab):
        return ""
    from hvd_pretrain.data import read_manifest
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.vocab.extend import extends

    try:
        path = ((read_manifest(data_dir, missing_ok=True) or {}).get("tokenizer") or {}).get("path")
    except DataError:
        return ""
    return os.path.dirname(path) if path and extends(os.path.dirname(path), checkpoint_vocab) else ""


@entry
def main(argv):
    if len(argv) > 1:
        raise ConfigError("unexpected arguments %s; hvd-pretrain takes only --flags" % " ".join(argv[1:]))
    spec = run_spec()
    if FLAGS.dry_run:
        return dry_run(spec)
    if FLAGS.checkpoint and not FLAGS.eval_only:
        raise ConfigError("--checkpoint=%s is for --eval_only; to continue training from it use --init_checkpoint"
                          % FLAGS.checkpoint)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from hvd_pretrain.train.trainer import train as run_training
    try:
        if FLAGS.eval_only:
            from hvd_pretrain.train.eval_only import evaluate_only
            return evaluate_only(spec, FLAGS.checkpoint, FLAGS.eval_output)
        return run_training(spec)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - every rank failure is reported here, once
        return report_rank_failure(e)


def dry_run(spec):
    """Print the model, the batch/step plan and (with --gpu_type) the capacity prediction; train nothing."""
    model, train, source = spec.model, spec.train, spec.source
    from hvd_pretrain.models.params import count_parameters
    from hvd_pretrain.train.plan import BatchPlan, budget_steps
    world = FLAGS.world_size or int(os.environ.get("HOROVOD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
    instances = None
    if source.data_dir:
        from hvd_pretrain.data.shards import read_manifest
        instances = (read_manifest(source.data_dir, missing_ok=True) or {}).get("num_instances")
    steps, warmup, note = budget_steps(train, world, instances)
    plan = BatchPlan(train.per_rank_batch, train.accum_steps, world, steps, warmup, train.max_seq_length)
    print("model: %s (%s), %s parameters, vocab %d, sharing %s, objective %s"
          % (model.preset, model.family, format(count_parameters(model), ","), model.vocab_size, model.sharing,
             model.sentence_objective))
    print("optimizer: %s, peak lr %g, %s precision%s" % (train.optimizer, train.learning_rate, train.precision,
                                                        ", XLA" if train.xla else ""))
    if note:
        print(note)
    print(plan.describe(instances))
    if train.gpu_type:
        from hvd_pretrain.plan import format_prediction, predict
        per_node = min(FLAGS.gpus_per_node, world)
        prediction = predict(model, train.max_seq_length, train.per_rank_batch, train.accum_steps,
                             train.precision, train.gpu_type, per_node, -(-world // per_node),
                             FLAGS.interconnect, network=FLAGS.network, fp16_allreduce=train.fp16_allreduce,
                             num_predictions=train.max_predictions_per_seq)
        print(format_prediction(prediction))
    return 0


def _rank():
    for key in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def report_rank_failure(exc):
    """The failing rank prints its own traceback; ranks that only saw Horovod shut down say one line.

    That keeps the first real error at the top of the job's output instead of under a wall of
    secondary "Horovod has been shut down" errors from the other ranks.
    """
    import traceback
    rank = _rank()
    if "Horovod has been shut down" in str(exc):
        print("rank %d: stopping because another rank failed (its error is reported above)" % rank,
              file=sys.stderr, flush=True)
        return 1
    print("rank %d failed:" % rank, file=sys.stderr)
    traceback.print_exc()
    print("error: rank %d failed: %s: %s" % (rank, type(exc).__name__, quoted(exc)),
          file=sys.stderr, flush=True)
    return 1


def parse_flags(argv):
    """absl parsing, but a bad flag is one line and exit code 2 (a configuration error)."""
    if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv[1:]):
        print(__doc__)
        print(FLAGS.module_help(__name__))
        sys.exit(0)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print("error: %s (see %s --help)" % (quoted(e), os.path.basename(argv[0])), file=sys.stderr)
        sys.exit(2)


def run():
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
