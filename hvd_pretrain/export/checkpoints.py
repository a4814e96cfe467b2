"""Load a trained pretrainer from a run directory's checkpoint, for export.

Reads the layout the trainer writes (checkpoints/ckpt-<step>/ with ckpt.*
and model_config.json); only the model is restored, never the optimizer,
and nothing in the run directory is modified.
"""

import glob
import json
import os
import sys

from hvd_pretrain.errors import ConfigError, quoted
from hvd_pretrain.models.config import ModelConfig
from hvd_pretrain.rundir import RunDir

CHECKPOINT_PREFIX = "ckpt"


def resolve_checkpoint(path):
    """A checkpoint directory from a run directory (its latest checkpoint) or a checkpoint directory."""
    from hvd_pretrain.checkpoint_files import CheckpointDamaged, newest_good_checkpoint, verify_checkpoint

    if os.path.isfile(os.path.join(path, "model_config.json")):
        try:
            verify_checkpoint(path)
        except CheckpointDamaged as e:
            raise ConfigError("checkpoint %s is damaged (%s); export another one" % (path, e)) from None
        return path
    warn = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        _, found, _ = newest_good_checkpoint(RunDir(path).checkpoints, warn=warn)
    except CheckpointDamaged as e:
        raise ConfigError(str(e)) from None
    if not found:
        raise ConfigError("%s holds no complete checkpoint (checkpoints/ckpt-*/state.json); train first or pass "
                          "--checkpoint=DIR" % path)
    return found


def read_model_config(ckpt_dir):
    """The validated ModelConfig stored beside a checkpoint (model_config.json); ConfigError if unreadable."""
    config_path = os.path.join(ckpt_dir, "model_config.json")
    try:
        with open(config_path) as f:
            return ModelConfig.from_dict(json.load(f)).validate()
    except (OSError, ValueError) as e:
        raise ConfigError("cannot read %s: %s" % (config_path, e)) from None


def load_checkpoint_model(path):
    """(model, checkpoint dir): the pretrainer stored at `path` (run dir or checkpoint dir)."""
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.tfcompat import tf

    ckpt_dir = resolve_checkpoint(path)
    config = read_model_config(ckpt_dir)
    if not glob.glob(os.path.join(ckpt_dir, CHECKPOINT_PREFIX + ".index")):
        raise ConfigError("checkpoint %s has no %s.index; it is incomplete" % (ckpt_dir, CHECKPOINT_PREFIX))
    model = build_pretrainer(config).build_for()
    status = tf.train.Checkpoint(model=model).read(os.path.join(ckpt_dir, CHECKPOINT_PREFIX))
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ConfigError("checkpoint %s does not hold this model's weights: %s"
                          % (ckpt_dir, quoted(e))) from None
    return model, ckpt_dir
