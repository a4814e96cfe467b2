"""What a probe fine-tunes: the pre-trained weights and the vocabulary they were trained with.

    Source.from_checkpoint(path)    our run directory (its newest good checkpoint) or one checkpoint dir
    run_checkpoints(run_dir)        every kept checkpoint of a run, oldest first (--all_checkpoints)
    Source.from_pretrained(path)    a Google TF1 checkpoint or a transformers directory (--init_from)

Nothing in a run directory is modified; damaged checkpoints are skipped with a warning.
"""

import os
import sys

from hvd_pretrain.errors import CheckpointDamaged, ConfigError, DataError
from hvd_pretrain.rundir import RANDOM_INIT, RunDir, read_json


def _has_vocab(path):
    return bool(path) and (os.path.isfile(path) or any(os.path.isfile(os.path.join(path, name))
                                                       for name in ("spm.model", "vocab.txt")))


def run_vocab(run_dir):
    """A run's vocab: its vocab/, else the one its data was made with (plan.json); None when neither exists."""
    rundir = RunDir(run_dir)
    candidates = [rundir.vocab_dir, ((read_json(rundir.plan) or {}).get("data") or {}).get("vocab_dir")]
    return next((c for c in candidates if _has_vocab(c)), None)


class Source:
    """One set of pre-trained weights: `load(pretrainer)` assigns them; `config` and `vocab` describe them.

    step: the pre-training step (None for public checkpoints and random initialisation).
    """

    def __init__(self, label, config, vocab, load, step=None):
        self.label = label
        self.config = config
        self.vocab = vocab
        self.load = load
        self.step = step

    @classmethod
    def from_checkpoint(cls, path, vocab=None):
        from hvd_pretrain.export.checkpoints import resolve_checkpoint
        if not os.path.exists(path):
            raise ConfigError("--checkpoint=%s does not exist" % path)
        return cls._ours(resolve_checkpoint(path), vocab)

    @classmethod
    def _ours(cls, ckpt_dir, vocab=None):
        from hvd_pretrain.export.checkpoints import read_model_config
        config = read_model_config(ckpt_dir)
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(ckpt_dir)))
        state = read_json(os.path.join(ckpt_dir, "state.json")) or {}

        def load(pretrainer):
            from hvd_pretrain.tfcompat import tf
            status = tf.train.Checkpoint(model=pretrainer).read(os.path.join(ckpt_dir, "ckpt")).expect_partial()
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise ConfigError("checkpoint %s does not hold this model's weights: %s"
                                  % (ckpt_dir, str(e)[:200])) from None
        return cls(ckpt_dir, config, vocab or run_vocab(run_dir), load, step=state.get("step"))

    @classmethod
    def from_pretrained(cls, path, vocab=None):
        from hvd_pretrain.export.importers import config_from_pretrained, pretrained_vocab
        if not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise ConfigError("--init_from=%s does not exist" % path)
        config = config_from_pretrained(path)

        def load(pretrainer):
            from hvd_pretrain.export.importers import load_pretrained
            load_pretrained(pretrainer, path)  # pre-training heads the source lacks are not used here
        return cls(path, config, vocab or pretrained_vocab(path), load)

    def random(self):
        """The same architecture and vocab, randomly initialised: the baseline a probe should beat."""
        return Source("%s (%s)" % (RANDOM_INIT, self.label), self.config, self.vocab, lambda pretrainer: None)

    def require_vocab(self):
        if not self.vocab:
            raise DataError("no vocabulary found for %s; pass --vocab=DIR (the directory hvd-data vocab wrote, or a"
                            " vocab.txt / spm.model)" % self.label)
        return self.vocab


def run_checkpoints(run_dir, vocab=None):
    """A Source per checkpoint of a run that verifies, oldest first; damaged ones are skipped with a warning."""
    from hvd_pretrain.checkpoint_files import list_checkpoints, verify_checkpoint
    found = list_checkpoints(RunDir(run_dir).checkpoints)
    if not found:
        raise ConfigError("--all_checkpoints: %s holds no complete checkpoint (checkpoints/ckpt-*/); pass a run"
                          " directory that has trained" % run_dir)
    sources = []
    for _, path in found:
        try:
            verify_checkpoint(path)
        except CheckpointDamaged as e:
            print("warning: skipping damaged checkpoint %s (%s)" % (path, e), file=sys.stderr)
            continue
        sources.append(Source._ours(path, vocab))
    if not sources:
        raise ConfigError("--all_checkpoints: every checkpoint of %s is damaged" % run_dir)
    return sources
