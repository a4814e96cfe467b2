"""Rank 0's start-up decisions, made once and broadcast to every rank.

Prepares the data, settles the vocab size and sequence length against the
model, and reads the state of the checkpoint the run will start from: its own
latest checkpoint (resume), or --init_checkpoint (a new phase from another
run's weights). Any problem is a UsageError (hvd_pretrain/errors.py).
"""

import os
import sys

from hvd_pretrain.rundir import RunDir
from hvd_pretrain.checkpoint_files import STATE, check_compatible, newest_good_checkpoint, verify_checkpoint
from hvd_pretrain.errors import EXIT_USAGE, CheckpointDamaged, ConfigError
from hvd_pretrain.train.prepare import prepare

EXIT_CONFIG = EXIT_USAGE


def print_error(line):
    """A start-up or data problem, as the one line the user sees (on stderr)."""
    print("error: " + line, file=sys.stderr, flush=True)


def print_warning(line):
    """A line that starts with "warning: ", on stderr."""
    print(line if line.startswith("warning: ") else "warning: " + line, file=sys.stderr, flush=True)


def _init_checkpoint(path):
    """--init_checkpoint may name a checkpoint directory, a checkpoints/ directory or a run directory.

    In a directory of checkpoints the newest one that verifies is taken (another run's
    damaged checkpoints are skipped with a warning, never renamed).
    """
    if os.path.isfile(os.path.join(path, STATE)):
        return path
    for candidate in (RunDir(path).checkpoints, path):
        _, found, _ = newest_good_checkpoint(candidate, warn=print_warning)
        if found:
            return found
    raise ConfigError("--init_checkpoint=%s holds no complete checkpoint (ckpt-*/state.json); give a run"
                       " directory or a checkpoint directory" % path)


def _check_flags_against_data(spec, prepared):
    """A value the user set explicitly must equal the one the data was made with."""
    made = prepared.get("data_config") or {}
    checks = [("max_seq_length", spec.data.max_seq_length, prepared["max_seq_length"]),
              ("max_predictions_per_seq", spec.data.max_predictions_per_seq, prepared["max_predictions"])]
    checks += [(name, getattr(spec.data, name), made.get(name)) for name in ("dupe_factor", "num_shards")]
    for flag, ours, theirs in checks:
        if theirs is not None and spec.source.given(flag) and ours != theirs:
            raise ConfigError("--%s=%s differs from the %s the data in %s was made with; drop the flag to train"
                              " on the data as it is, or rebuild the data with --%s=%s"
                              % (flag, ours, theirs, prepared["data_dir"], flag, ours))


def resolve(spec, world_size, printer, rank=0):
    """The run's start-up decisions for a RunSpec, as one dict; raises UsageError.

    Keys: the prepared data (data_dir, vocab_dir, files, num_instances, ...), vocab_size,
    max_seq_length, max_predictions, and the checkpoint to start from (checkpoint,
    resume_state, init_from, init_checkpoint, step_offset). `spec.resolved(...)` applies
    them. `rank` 0 sets damaged checkpoints of this run aside (renamed, never deleted);
    other ranks (elastic workers resolving alone) only skip them.
    """
    model_config, cfg, source = spec.model, spec.train, spec.source
    rundir = RunDir(cfg.run_dir).ensure()
    prepared = prepare(rundir, spec.data, source.vocab_size, source.input_files, source.data_dir, source.vocab_dir,
                       printer=printer)
    data_vocab = prepared["vocab_size"]
    if data_vocab and source.given("vocab_size") and data_vocab != source.vocab_size:
        raise ConfigError("--vocab_size=%d does not match the vocab of the data (%d pieces in %s); drop the flag"
                          " or rebuild the data" % (source.vocab_size, data_vocab,
                                                    prepared["vocab_dir"] or prepared["data_dir"]))
    vocab_extension = None
    if source.init_from:
        if data_vocab and data_vocab != model_config.vocab_size:
            vocab_extension = _vocab_extension(prepared.get("vocab_dir"), model_config.vocab_size, data_vocab)
            if vocab_extension is None:
                raise ConfigError("the data's vocab has %d pieces but --init_from=%s has vocab_size %d; build the"
                                  " data with the checkpoint's vocab, or with one extended from it (hvd-data vocab"
                                  " --extend)" % (data_vocab, source.init_from, model_config.vocab_size))
        else:
            data_vocab = model_config.vocab_size
    data_vocab = data_vocab or source.vocab_size
    _check_flags_against_data(spec, prepared)
    seq = prepared["max_seq_length"] or cfg.max_seq_length
    if seq > model_config.max_position_embeddings:
        raise ConfigError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d; lower it or raise"
                          " --max_position_embeddings" % (seq, model_config.max_position_embeddings))
    data_objective = prepared.get("sentence_objective")
    if data_objective and model_config.sentence_objective != "none" and data_objective != model_config.sentence_objective:
        raise ConfigError("the data in %s carries %s labels but the model trains %s; recreate the data with"
                          " --sentence_objective=%s or pick the matching --model"
                          % (prepared["data_dir"], data_objective, model_config.sentence_objective,
                             model_config.sentence_objective))
    model_config = model_config.replace(vocab_size=data_vocab).validate()
    resolved = dict(prepared, vocab_size=data_vocab, max_seq_length=seq,
                    max_predictions=prepared["max_predictions"] or cfg.max_predictions_per_seq,
                    checkpoint=None, init_checkpoint=None, resume_state=None, step_offset=0)

    _, path, state = newest_good_checkpoint(rundir.checkpoints, set_aside_damaged=rank == 0,
                                            warn=print_warning if rank == 0 else None)
    if path:
        check_compatible(path, model_config)
        resolved.update(checkpoint=path, resume_state=state, step_offset=int(state.get("step_offset", 0)))
    elif source.init_from:
        resolved.update(init_from=source.init_from, vocab_extension=vocab_extension)
    elif cfg.init_checkpoint:
        init = _init_checkpoint(cfg.init_checkpoint)
        check_compatible(init, model_config)
        try:
            state = verify_checkpoint(init)
        except CheckpointDamaged as e:
            raise CheckpointDamaged("--init_checkpoint: %s is damaged (%s); give another checkpoint"
                                    % (init, e)) from None
        resolved.update(init_checkpoint=init,
                        step_offset=int(state.get("step", 0)) if cfg.continue_global_step else 0)
    return resolved


def _vocab_extension(vocab_dir, checkpoint_size, data_size):
    """The vocab dir whose vocab_extension.json takes a `checkpoint_size` vocab to `data_size` pieces, or None."""
    from hvd_pretrain.vocab.extend import read_extension

    extension = read_extension(vocab_dir) if vocab_dir else None
    if extension and extension.get("base_size") == checkpoint_size and extension.get("size") == data_size:
        return vocab_dir
    return None
