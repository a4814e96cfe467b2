"""The checkpoints/ part of the run directory: names, digests, verification, setting damage aside.

No TensorFlow at import time (the supervisor, the monitor and export read this
layout too); only a checkpoint written without digests is read through it.
Written by hvd_pretrain/train/checkpoint.py (CheckpointWriter, rank 0 only):
atomically (a temporary directory, then a rename), verified before it replaces
anything and again before a restore, keep-N, and refused on resume when the
model architecture differs.

Layout::

    checkpoints/ckpt-000000100/
        ckpt.index, ckpt.data-*      TensorFlow checkpoint (model + optimizer)
        model_config.json            the ModelConfig that produced it
        state.json                   step, examples seen, plan, time, and the size and
                                     CRC-32C of every other file (written last)
    checkpoints/ckpt-000000200.damaged   a checkpoint that failed verification, set aside

Checkpoints are ordered by the step number in their name, compared as an
integer. A damaged checkpoint (a truncated or altered file, an unreadable
state.json or model_config.json) is never deleted: `newest_good_checkpoint`
renames it to ``<name>.damaged`` and the run resumes from the newest good one.
"""

import os
import re

import google_crc32c

from hvd_pretrain.errors import CheckpointDamaged, CheckpointMismatch, quoted  # noqa: F401 - raised here
from hvd_pretrain.rundir import read_json

_NAME = re.compile(r"^ckpt-(\d+)$")
STATE = "state.json"
MODEL_CONFIG = "model_config.json"
DAMAGED_SUFFIX = ".damaged"
_CHUNK = 8 << 20


def checkpoint_name(step):
    return "ckpt-%09d" % int(step)


def list_checkpoints(directory):
    """Complete checkpoints as (step, path), oldest first, by step number. Partial writes are ignored."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        m = _NAME.match(name)
        path = os.path.join(directory, name)
        if m and os.path.isfile(os.path.join(path, STATE)):
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory):
    """(step, path) of the highest-numbered complete checkpoint, unverified; (None, None) when none."""
    found = list_checkpoints(directory)
    return found[-1] if found else (None, None)


def file_digests(directory, skip=(STATE,)):
    """{file name: {"bytes": size, "crc32c": 8 hex digits}} for every file in `directory` but `skip`.

    The files are read back from disk in 8 MiB chunks; CRC-32C (Castagnoli) as in TFRecord files.
    """
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name in skip or not os.path.isfile(path):
            continue
        crc, size = 0, 0
        with open(path, "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                crc = google_crc32c.extend(crc, chunk)
                size += len(chunk)
        out[name] = {"bytes": size, "crc32c": "%08x" % crc}
    return out


def verify_checkpoint(path):
    """Check a checkpoint directory; returns its state.json. Raises CheckpointDamaged naming the fault.

    With recorded digests every file's size and CRC-32C must match. A checkpoint written
    without digests is read in full through TensorFlow, whose index holds a CRC-32C of every
    tensor.
    """
    state = read_json(os.path.join(path, STATE))
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointDamaged("%s is unreadable or has no step" % STATE)
    if not isinstance(read_json(os.path.join(path, MODEL_CONFIG)), dict):
        raise CheckpointDamaged("%s is unreadable" % MODEL_CONFIG)
    recorded = state.get("files")
    if recorded:
        for name, want in sorted(recorded.items()):
            file_path = os.path.join(path, name)
            try:
                size = os.path.getsize(file_path)
            except OSError:
                raise CheckpointDamaged("%s is missing" % name) from None
            if size != want["bytes"]:
                raise CheckpointDamaged("%s has %d bytes, %d were written" % (name, size, want["bytes"]))
        got = file_digests(path)
        for name, want in sorted(recorded.items()):
            if got.get(name, {}).get("crc32c") != want["crc32c"]:
                raise CheckpointDamaged("%s does not match the CRC-32C recorded when it was written" % name)
        return state
    from hvd_pretrain.tfcompat import tf
    try:
        reader = tf.train.load_checkpoint(os.path.join(path, "ckpt"))
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except Exception as e:  # noqa: BLE001 - the reader raises OpError, IndexError or ValueError on damage
        raise CheckpointDamaged("TensorFlow cannot read it (%s)" % quoted(e)) from None
    return state


def set_aside(path):
    """Rename a damaged checkpoint to <path>.damaged (or .damaged-2, ...); nothing is deleted."""
    target = path + DAMAGED_SUFFIX
    n = 1
    while os.path.exists(target):
        n += 1
        target = "%s%s-%d" % (path, DAMAGED_SUFFIX, n)
    os.rename(path, target)
    return target


def newest_good_checkpoint(directory, set_aside_damaged=False, warn=None):
    """(step, path, state) of the newest checkpoint that verifies; (None, None, None) when none is good.

    Damaged checkpoints newer than it are reported through `warn(line)` and, with
    `set_aside_damaged` and a good checkpoint to fall back on, renamed by `set_aside`.
    When every checkpoint is damaged nothing is renamed and CheckpointDamaged is raised.
    """
    found = list_checkpoints(directory)
    damaged = []
    for step, path in reversed(found):
        try:
            state = verify_checkpoint(path)
        except CheckpointDamaged as e:
            damaged.append((path, str(e)))
            continue
        for bad, reason in damaged:
            kept = set_aside(bad) if set_aside_damaged else bad
            if warn:
                warn("warning: checkpoint %s is damaged (%s); %s; resuming from %s"
                     % (os.path.basename(bad), reason,
                        "set aside as %s" % os.path.basename(kept) if kept != bad else "skipped",
                        os.path.basename(path)))
        return step, path, state
    if damaged:
        bad, reason = damaged[0]
        raise CheckpointDamaged(
            "every checkpoint in %s is damaged (newest: %s: %s); move them aside to start this run again from"
            " step 0, or restore them from a backup" % (directory, os.path.basename(bad), reason))
    return None, None, None


def check_compatible(path, model_config):
    """Raise CheckpointMismatch when the checkpoint at `path` was made by another architecture."""
    saved = read_json(os.path.join(path, MODEL_CONFIG))
    if saved is None:
        raise CheckpointMismatch("checkpoint %s has no readable %s; move it away or use a new --run_dir"
                                 % (path, MODEL_CONFIG))
    ours = model_config.architecture_dict()
    theirs = {k: saved.get(k) for k in ours}
    diff = ["%s=%r (checkpoint) vs %r (now)" % (k, theirs[k], ours[k]) for k in sorted(ours) if theirs[k] != ours[k]]
    if diff:
        raise CheckpointMismatch(
            "checkpoint %s was made by a different model config (%s); refusing to resume or overwrite it: "
            "use a new --run_dir or the original model flags" % (path, "; ".join(diff[:4])))
