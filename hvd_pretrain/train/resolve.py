"""Rank 0's start-up decisions, made once and broadcast to every rank.

Prepares the data, settles the vocab size and sequence length against the
model, and reads the state of the checkpoint the run will start from: its own
latest checkpoint (resume), or --init_checkpoint (a new phase from another
run's weights). Any problem is a ResolveError with a one-line message.
"""

import os
import sys

from hvd_pretrain.rundir import RunDir, read_json
from hvd_pretrain.train.checkpoint import CheckpointMismatch, check_compatible, latest_checkpoint
from hvd_pretrain.train.prepare import PrepareError, prepare

EXIT_CONFIG = 2


def print_error(line):
    """A start-up or data problem, as the one line the user sees (on stderr)."""
    print("error: " + line, file=sys.stderr, flush=True)


class ResolveError(Exception):
    """A start-up problem (one-line message); the run exits with code 2."""


def _init_checkpoint(path):
    """--init_checkpoint may name a checkpoint directory, a checkpoints/ directory or a run directory."""
    if os.path.isfile(os.path.join(path, "state.json")):
        return path
    for candidate in (os.path.join(path, "checkpoints"), path):
        _, found = latest_checkpoint(candidate)
        if found:
            return found
    raise ResolveError("--init_checkpoint=%s holds no complete checkpoint (ckpt-*/state.json); give a run"
                       " directory or a checkpoint directory" % path)


def resolve(model_config, cfg, data_config, source, world_size, printer):
    try:
        return _resolve(model_config, cfg, data_config, source, world_size, printer)
    except (PrepareError, CheckpointMismatch, ValueError) as e:
        raise ResolveError(str(e).splitlines()[0]) from None


def _resolve(model_config, cfg, data_config, source, world_size, printer):
    rundir = RunDir(cfg.run_dir).ensure()
    prepared = prepare(rundir, data_config, source["vocab_size"], source["input_files"], source["data_dir"],
                       source["vocab_dir"], printer=printer)
    data_vocab = prepared["vocab_size"]
    if data_vocab and source["vocab_size_set"] and data_vocab != source["vocab_size"]:
        raise ResolveError("--vocab_size=%d does not match the vocab of the data (%d pieces in %s); drop the flag"
                           " or rebuild the data" % (source["vocab_size"], data_vocab,
                                                     prepared["vocab_dir"] or prepared["data_dir"]))
    if source.get("init_from"):
        if data_vocab and data_vocab != model_config.vocab_size:
            raise ResolveError("the data's vocab has %d pieces but --init_from=%s has vocab_size %d; build the data"
                               " with the checkpoint's vocab (--vocab_dir)" % (data_vocab, source["init_from"],
                                                                             model_config.vocab_size))
        data_vocab = model_config.vocab_size
    data_vocab = data_vocab or source["vocab_size"]
    seq = prepared["max_seq_length"] or cfg.max_seq_length
    if prepared["max_seq_length"] and source["max_seq_length_set"] and seq != cfg.max_seq_length:
        raise ResolveError("--max_seq_length=%d differs from the data's %d (%s); rebuild the data or drop the flag"
                           % (cfg.max_seq_length, seq, prepared["data_dir"]))
    if seq > model_config.max_position_embeddings:
        raise ResolveError("--max_seq_length=%d exceeds the model's max_position_embeddings=%d; lower it or raise"
                           " --max_position_embeddings" % (seq, model_config.max_position_embeddings))
    if len(prepared["files"]) < world_size:
        raise ResolveError("%s has %d shard(s) for %d ranks; every rank needs its own shards: recreate the data"
                           " with --num_shards >= %d" % (prepared["data_dir"], len(prepared["files"]),
                                                          world_size, world_size))
    data_objective = prepared.get("sentence_objective")
    if data_objective and model_config.sentence_objective != "none" and data_objective != model_config.sentence_objective:
        raise ResolveError("the data in %s carries %s labels but the model trains %s; recreate the data with"
                           " --sentence_objective=%s or pick the matching --model"
                           % (prepared["data_dir"], data_objective, model_config.sentence_objective,
                              model_config.sentence_objective))
    model_config.vocab_size = data_vocab
    model_config.validate()
    resolved = dict(prepared, vocab_size=data_vocab, max_seq_length=seq,
                    max_predictions=prepared["max_predictions"] or cfg.max_predictions_per_seq,
                    checkpoint=None, init_checkpoint=None, resume_state=None, step_offset=0)

    _, path = latest_checkpoint(rundir.checkpoints)
    if path:
        check_compatible(path, model_config)
        state = read_json(os.path.join(path, "state.json"), {})
        resolved.update(checkpoint=path, resume_state=state, step_offset=int(state.get("step_offset", 0)))
    elif source.get("init_from"):
        resolved["init_from"] = source["init_from"]
    elif cfg.init_checkpoint:
        init = _init_checkpoint(cfg.init_checkpoint)
        check_compatible(init, model_config)
        state = read_json(os.path.join(init, "state.json"), {})
        resolved.update(init_checkpoint=init,
                        step_offset=int(state.get("step", 0)) if cfg.continue_global_step else 0)
    return resolved
