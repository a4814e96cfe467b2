"""Rank-0 checkpoint writing and restoring (TensorFlow); the layout, digests and verification
live in hvd_pretrain/checkpoint_files.py.

    checkpoints/ckpt-000000100/
        ckpt.index, ckpt.data-*      TensorFlow checkpoint (model + optimizer)
        model_config.json            the ModelConfig that produced it
        state.json                   step, examples seen, plan, time, and the size and
                                     CRC-32C of every other file (written last)
"""

import json
import os
import shutil
import time

from hvd_pretrain.checkpoint_files import (MODEL_CONFIG, STATE, CheckpointDamaged, CheckpointMismatch,
                                           check_compatible, checkpoint_name, file_digests, latest_checkpoint,
                                           list_checkpoints, verify_checkpoint)
from hvd_pretrain.errors import quoted
from hvd_pretrain.rundir import read_json, write_json_atomic
from hvd_pretrain.tfcompat import tf


class CheckpointWriter:
    """Saves and restores model + optimizer state under `directory` (used on rank 0)."""

    def __init__(self, directory, model, optimizer, model_config, keep=3):
        self.directory = directory
        self.model_config = model_config
        self.keep = int(keep)
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)

    def save(self, step, state):
        """Write checkpoint `step`, verify it, then move it into place; returns its path.

        Raises CheckpointDamaged (and replaces nothing) when the files read back differ from
        what TensorFlow wrote.
        """
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, checkpoint_name(step))
        tmp = os.path.join(self.directory, ".tmp-%s-%d" % (checkpoint_name(step), os.getpid()))
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        self.ckpt.write(os.path.join(tmp, "ckpt"))
        with open(os.path.join(tmp, MODEL_CONFIG), "w") as f:
            json.dump(self.model_config.to_dict(), f, indent=2, sort_keys=True)
        self._check_index(tmp)
        write_json_atomic(os.path.join(tmp, STATE), dict(state, step=int(step), saved_at=time.time(),
                                                         files=file_digests(tmp)))
        try:
            verify_checkpoint(tmp)
        except CheckpointDamaged as e:
            raise CheckpointDamaged("checkpoint %s failed verification after writing (%s); kept as %s"
                                    % (final, e, tmp)) from None
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

    def _check_index(self, directory):
        """The new checkpoint's index reads back and lists at least every model variable."""
        try:
            stored = tf.train.load_checkpoint(os.path.join(directory, "ckpt")).get_variable_to_shape_map()
        except tf.errors.OpError as e:
            raise CheckpointDamaged("checkpoint written to %s cannot be read back: %s"
                                    % (directory, quoted(e))) from None
        expected = len(self.ckpt.model.variables)
        if len(stored) < expected:
            raise CheckpointDamaged("checkpoint written to %s lists %d tensors for a model of %d variables"
                                    % (directory, len(stored), expected))

    def _prune(self, keep_path):
        found = list_checkpoints(self.directory)
        for _, path in found[: max(0, len(found) - self.keep)]:
            if path != keep_path:
                shutil.rmtree(path, ignore_errors=True)

    def restore(self, path):
        """Restore model and optimizer from `path`; returns its state.json."""
        check_compatible(path, self.model_config)
        self.ckpt.read(os.path.join(path, "ckpt")).assert_existing_objects_matched()
        return read_json(os.path.join(path, STATE), {})

    def restore_weights(self, path):
        """Model weights only (a new training phase from another run): fresh optimizer state."""
        check_compatible(path, self.model_config)
        status = tf.train.Checkpoint(model=self.ckpt.model).read(os.path.join(path, "ckpt")).expect_partial()
        try:
            status.assert_existing_objects_matched()  # every model variable came from the checkpoint
        except AssertionError as e:
            raise CheckpointMismatch("checkpoint %s does not hold every weight of this model (%s); give a checkpoint"
                                     " of the same model" % (path, quoted(e)[:200])) from None
        return read_json(os.path.join(path, STATE), {})


class BestCheckpoint:
    """The checkpoint with the best eval metric so far (--keep_best), in its own directory beside the
    keep-N rotation (checkpoints/best/), which never deletes it. A new best is written and verified
    before the old one is removed; its state.json holds the eval metrics and the keep_best record.
    A resumed run continues from the recorded best value."""

    def __init__(self, directory, model, optimizer, model_config, metric, direction):
        from hvd_pretrain.train.eval_metrics import PREFIX

        self.writer = CheckpointWriter(directory, model, optimizer, model_config, keep=1)
        self.metric, self.direction, self.name = metric, direction, PREFIX + metric
        self.best = None
        _, path = latest_checkpoint(directory)
        record = read_json(os.path.join(path, STATE), {}).get("keep_best") if path else None
        if record and record.get("metric") == self.name and record.get("direction") == direction:
            self.best = record.get("value")

    def offer(self, step, metrics, state):
        """Save the model as the best when metrics[metric] beats the best so far; returns the path or None."""
        from hvd_pretrain.train.eval_metrics import better

        value = metrics.get(self.metric)
        if not better(value, self.best, self.direction):
            return None
        path = self.writer.save(step, dict(state, eval=metrics, keep_best={"metric": self.name, "value": value,
                                                                            "direction": self.direction}))
        self.best = value
        return path
