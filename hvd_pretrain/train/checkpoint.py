"""Rank-0 checkpoints: written atomically (write to a temporary directory, then
rename), keep-N, and refused on resume when the model architecture differs.

Layout::

    checkpoints/ckpt-000000100/
        ckpt.index, ckpt.data-*      TensorFlow checkpoint (model + optimizer)
        model_config.json            the ModelConfig that produced it
        state.json                   step, examples seen, plan, time (written last)
"""

import json
import os
import re
import shutil
import time

from hvd_pretrain.rundir import read_json, write_json_atomic
from hvd_pretrain.tfcompat import tf

_NAME = re.compile(r"^ckpt-(\d{9})$")


class CheckpointMismatch(Exception):
    """A checkpoint that belongs to a different model (one-line message)."""


def list_checkpoints(directory):
    """Complete checkpoints as (step, path), oldest first. Partial writes are ignored."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        m = _NAME.match(name)
        path = os.path.join(directory, name)
        if m and os.path.isfile(os.path.join(path, "state.json")):
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory):
    found = list_checkpoints(directory)
    return found[-1] if found else (None, None)


def check_compatible(path, model_config):
    """Raise CheckpointMismatch when the checkpoint at `path` was made by another architecture."""
    saved = read_json(os.path.join(path, "model_config.json"))
    if saved is None:
        raise CheckpointMismatch("checkpoint %s has no readable model_config.json; move it away or use a new --run_dir"
                                 % path)
    ours = model_config.architecture_dict()
    theirs = {k: saved.get(k) for k in ours}
    diff = ["%s=%r (checkpoint) vs %r (now)" % (k, theirs[k], ours[k]) for k in sorted(ours) if theirs[k] != ours[k]]
    if diff:
        raise CheckpointMismatch(
            "checkpoint %s was made by a different model config (%s); refusing to resume or overwrite it: "
            "use a new --run_dir or the original model flags" % (path, "; ".join(diff[:4])))


class CheckpointWriter:
    """Saves and restores model + optimizer state under `directory` (used on rank 0)."""

    def __init__(self, directory, model, optimizer, model_config, keep=3):
        self.directory = directory
        self.model_config = model_config
        self.keep = int(keep)
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)

    def save(self, step, state):
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, "ckpt-%09d" % step)
        tmp = os.path.join(self.directory, ".tmp-ckpt-%09d-%d" % (step, os.getpid()))
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        self.ckpt.write(os.path.join(tmp, "ckpt"))
        with open(os.path.join(tmp, "model_config.json"), "w") as f:
            json.dump(self.model_config.to_dict(), f, indent=2, sort_keys=True)
        write_json_atomic(os.path.join(tmp, "state.json"), dict(state, step=int(step), saved_at=time.time()))
        if os.path.exists(final):
            # Same step saved again (e.g. a stop right after a periodic save): swap, then drop the old copy.
            old = final + ".old-%d" % os.getpid()
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        self._prune(keep_path=final)
        return final

    def _prune(self, keep_path):
        found = list_checkpoints(self.directory)
        for _, path in found[: max(0, len(found) - self.keep)]:
            if path != keep_path:
                shutil.rmtree(path, ignore_errors=True)

    def restore(self, path):
        """Restore model and optimizer from `path`; returns its state.json."""
        check_compatible(path, self.model_config)
        self.ckpt.read(os.path.join(path, "ckpt")).assert_existing_objects_matched()
        return read_json(os.path.join(path, "state.json"), {})

    def restore_weights(self, path):
        """Model weights only (a new training phase from another run): fresh optimizer state."""
        check_compatible(path, self.model_config)
        model = self.ckpt.model
        tf.train.Checkpoint(model=model).read(os.path.join(path, "ckpt")).expect_partial()
        return read_json(os.path.join(path, "state.json"), {})
