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

from hvd_pretrain.cli.entry import entry
from hvd_pretrain.errors import ConfigError, UsageError, quoted

FLAGS = flags.FLAGS

DEFAULT_PRESETS = {"bert": "tiny", "albert": "albert-tiny", "electra": "electra-tiny"}
# Flags that the data also records: given explicitly, they must match the data.
DATA_FLAGS = ("vocab_size", "max_seq_length", "max_predictions_per_seq", "dupe_factor", "num_shards")

flags.DEFINE_string("run_dir", os.environ.get("HVD_PRETRAIN_RUN_DIR", "runs/default"),
                    "Run directory: vocab, data, checkpoints, metrics (default: $HVD_PRETRAIN_RUN_DIR or runs/default).")
flags.DEFINE_enum("model", "bert", ["bert", "albert", "electra"], "Model family.")
flags.DEFINE_string("preset", "", "Model size preset (default: tiny of the family). See hvd_pretrain/models/config.py.")
flags.DEFINE_string("input_files", "", "Plain-text corpus files (comma-separated, globs allowed): one sentence per"
                    " line, a blank line between documents. Default: the embedded corpus.")
flags.DEFINE_string("data_dir", "", "Existing TFRecord shards (hvd-data create, or Google's"
                    " create_pretraining_data.py output). Overrides --input_files.")
flags.DEFINE_string("vocab_dir", "", "Existing vocab directory (spm.model or vocab.txt).")
flags.DEFINE_integer("vocab_size", 8000, "SentencePiece vocab size when a vocab is trained; must match the data.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length (must match the data).")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence (must match the data).")
flags.DEFINE_integer("max_position_embeddings", None, "Position table size (default: the preset's, 512).")
flags.DEFINE_integer("train_batch_size", 32, "Per-rank micro-batch size.")
flags.DEFINE_integer("accum_steps", 1, "Micro-batches accumulated per optimizer step.")
flags.DEFINE_integer("num_train_steps", 300, "Optimizer steps.")
flags.DEFINE_integer("warmup_steps", -1, "Warmup optimizer steps (-1: --warmup_proportion of the steps).")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps for linear warmup when --warmup_steps=-1.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.")
flags.DEFINE_float("end_learning_rate", 0.0, "Learning rate at the last step.")
flags.DEFINE_float("decay_power", 1.0, "Polynomial decay power after warmup (1.0 = linear).")
flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer: AdamW, or LAMB (layer-wise trust ratios)"
                  " for large global batches.")
flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not on LayerNorm or biases).")
flags.DEFINE_float("clip_norm", 1.0, "Clip the allreduced gradient to this global norm (0: off).")
flags.DEFINE_integer("max_consecutive_skipped_steps", 100, "Stop (exit 2, naming the likely cause) after this many"
                     " optimizer steps in a row were skipped for non-finite gradients; 0: never.")
flags.DEFINE_float("hidden_dropout", None, "Override the preset's hidden dropout.")
flags.DEFINE_float("attention_dropout", None, "Override the preset's attention dropout.")
flags.DEFINE_enum("sharing", None, ["none", "all", "ffn", "attention"], "Override the preset's cross-layer sharing"
                  " (ALBERT: all).")
flags.DEFINE_integer("embedding_size", None, "Override the preset's factorized embedding size E.")
flags.DEFINE_enum("sentence_objective", None, ["nsp", "sop", "none"], "Override the family's sentence objective.")
flags.DEFINE_integer("save_checkpoints_steps", 100, "Checkpoint every N optimizer steps (rank 0).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_integer("log_every", 20, "Optimizer steps per logging window.")
flags.DEFINE_integer("seed", 12345, "Random seed (model init, data order).")
flags.DEFINE_integer("threads", 0, "CPU intra-op threads per rank (0: cores / local ranks).")
flags.DEFINE_integer("dupe_factor", 5, "When building data: passes over the corpus with different masks.")
flags.DEFINE_integer("num_shards", 8, "When building data: TFRecord shards (>= the number of ranks).")
flags.DEFINE_integer("train_examples", 0, "Length as a budget of examples (0: use --num_train_steps). Steps and"
                     " warmup then follow from the global batch, so changing np or accum keeps examples constant.")
flags.DEFINE_float("train_epochs", 0.0, "Length as epochs over the data's instances (0: off).")
flags.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"], "Compute precision; fp16 uses dynamic loss"
                  " scaling, variables and accumulated gradients stay fp32.")
flags.DEFINE_bool("xla", False, "XLA-compile the micro-step (jit_compile).")
flags.DEFINE_bool("fp16_allreduce", False, "Compress gradients to fp16 for the allreduce (Horovod compression).")
flags.DEFINE_integer("fusion_threshold_mb", 0, "Horovod tensor fusion buffer in MB (0: Horovod's default, 128 MB;"
                     " or set HOROVOD_FUSION_THRESHOLD).")
flags.DEFINE_float("cycle_time_ms", 0.0, "Horovod cycle time in ms (0: Horovod's default; or HOROVOD_CYCLE_TIME).")
flags.DEFINE_integer("stall_check_seconds", 60, "Horovod warns when ranks wait on each other this long.")
flags.DEFINE_integer("stall_shutdown_seconds", 0, "Horovod shuts the job down after a stall this long (0: never).")
flags.DEFINE_string("init_checkpoint", "", "Start from another run's weights (phase 2 from phase 1): a run dir or"
                    " checkpoint dir. Ignored once this run has its own checkpoint.")
flags.DEFINE_string("init_from", "", "Continue pre-training from a public checkpoint: a transformers directory"
                    " (config.json + weights) or a Google TF1 checkpoint (bert_model.ckpt + bert_config.json). The"
                    " model config and vocab come from it; --preset is ignored.")
flags.DEFINE_string("init_from_generator", "", "With --init_from and --model=electra: the generator's directory.")
flags.DEFINE_bool("continue_global_step", False, "With --init_checkpoint: continue the global step of that"
                  " checkpoint instead of starting this phase at step 0.")
flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s per rank for MFU (0: --gpu_type preset, or measured on CPU).")
flags.DEFINE_string("gpu_type", "", "GPU preset (V100-16G, V100-32G, A100-40G, A100-80G, H100) for MFU and the"
                    " --dry_run capacity prediction.")
flags.DEFINE_integer("gpus_per_node", 8, "For the --dry_run prediction with --gpu_type.")
flags.DEFINE_string("interconnect", "nvlink", "For the --dry_run prediction: intra-node link (nvlink, pcie).")
flags.DEFINE_string("network", "infiniband", "For the --dry_run prediction: inter-node network.")
flags.DEFINE_integer("world_size", 0, "For --dry_run: the number of ranks to plan for (0: from the launcher).")
flags.DEFINE_bool("elastic", False, "Elastic Horovod: run under horovodrun --min-np/--max-np"
                  " --host-discovery-script; ranks may leave and join (needs --data_dir).")
flags.DEFINE_integer("elastic_commit_every", 50, "With --elastic: commit the training state in host memory every N"
                     " optimizer steps (work since the last commit is redone after a rank fails).")
flags.DEFINE_bool("dry_run", False, "Print the resolved configuration and batch plan, then exit.")


def _configs():
    from hvd_pretrain.data.config import DataConfig
    from hvd_pretrain.models.config import preset
    from hvd_pretrain.train.config import TrainConfig

    family = FLAGS.model
    name = FLAGS.preset or DEFAULT_PRESETS[family]
    overrides = dict(hidden_dropout=FLAGS.hidden_dropout, attention_dropout=FLAGS.attention_dropout,
                     max_position_embeddings=FLAGS.max_position_embeddings,
                     sentence_objective=FLAGS.sentence_objective, vocab_size=FLAGS.vocab_size,
                     sharing=FLAGS.sharing, embedding_size=FLAGS.embedding_size)
    if FLAGS.init_from:
        from hvd_pretrain.export.importers import config_from_pretrained
        overrides.pop("vocab_size")
        model = config_from_pretrained(FLAGS.init_from, FLAGS.init_from_generator or None, **overrides)
        family = model.family
    else:
        model = preset(name, **overrides)
    if model.family != family:
        raise ConfigError("--preset=%s is a %s preset but --model=%s; pick a %s preset" % (name, model.family,
                                                                                       family, family))
    train = TrainConfig(
        run_dir=FLAGS.run_dir, per_rank_batch=FLAGS.train_batch_size, accum_steps=FLAGS.accum_steps,
        num_train_steps=FLAGS.num_train_steps, warmup_steps=FLAGS.warmup_steps,
        warmup_proportion=FLAGS.warmup_proportion, learning_rate=FLAGS.learning_rate,
        end_learning_rate=FLAGS.end_learning_rate, decay_power=FLAGS.decay_power, optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay, clip_norm=FLAGS.clip_norm, max_seq_length=FLAGS.max_seq_length,
        max_consecutive_skipped_steps=FLAGS.max_consecutive_skipped_steps,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq, save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoints=FLAGS.keep_checkpoints, log_every=FLAGS.log_every, seed=FLAGS.seed,
        threads=FLAGS.threads, train_examples=FLAGS.train_examples, train_epochs=FLAGS.train_epochs,
        precision=FLAGS.precision, xla=FLAGS.xla, fp16_allreduce=FLAGS.fp16_allreduce,
        fusion_threshold_mb=FLAGS.fusion_threshold_mb, cycle_time_ms=FLAGS.cycle_time_ms,
        stall_check_seconds=FLAGS.stall_check_seconds, stall_shutdown_seconds=FLAGS.stall_shutdown_seconds,
        init_checkpoint=FLAGS.init_checkpoint, continue_global_step=FLAGS.continue_global_step,
        peak_tflops=FLAGS.peak_tflops, gpu_type=FLAGS.gpu_type, elastic=FLAGS.elastic,
        elastic_commit_every=FLAGS.elastic_commit_every).validate()
    data = DataConfig(max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                      sentence_objective=model.sentence_objective, seed=FLAGS.seed, dupe_factor=FLAGS.dupe_factor,
                      num_shards=FLAGS.num_shards).validate()
    if FLAGS.max_seq_length > model.max_position_embeddings:
        raise ConfigError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d; lower it or raise"
                         " --max_position_embeddings" % (FLAGS.max_seq_length, model.max_position_embeddings))
    vocab_dir = FLAGS.vocab_dir
    if FLAGS.init_from and not vocab_dir:
        from hvd_pretrain.export.importers import pretrained_vocab
        vocab_dir = pretrained_vocab(FLAGS.init_from) or ""
    source = dict(input_files=FLAGS.input_files, data_dir=FLAGS.data_dir, vocab_dir=vocab_dir,
                  init_from=FLAGS.init_from, init_from_generator=FLAGS.init_from_generator,
                  vocab_size=FLAGS.vocab_size, dupe_factor=FLAGS.dupe_factor, num_shards=FLAGS.num_shards,
                  **{name + "_set": bool(FLAGS[name].present) for name in DATA_FLAGS})
    return model, train, data, source


@entry
def main(argv):
    if len(argv) > 1:
        raise ConfigError("unexpected arguments %s; hvd-pretrain takes only --flags" % " ".join(argv[1:]))
    model, train, data, source = _configs()
    if FLAGS.dry_run:
        return dry_run(model, train, source)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from hvd_pretrain.train.trainer import train as run_training
    try:
        return run_training(model, train, data, source)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - every rank failure is reported here, once
        return report_rank_failure(e)


def dry_run(model, train, source):
    """Print the model, the batch/step plan and (with --gpu_type) the capacity prediction; train nothing."""
    from hvd_pretrain.models.params import count_parameters
    from hvd_pretrain.train.plan import BatchPlan, budget_steps
    world = FLAGS.world_size or int(os.environ.get("HOROVOD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
    instances = None
    if source["data_dir"]:
        from hvd_pretrain.data.shards import read_manifest
        instances = (read_manifest(source["data_dir"], missing_ok=True) or {}).get("num_instances")
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
