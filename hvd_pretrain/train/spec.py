"""The run specification: one frozen value that says what a run trains, on what, and how.

    RunSpec
      model   ModelConfig   the encoder and its heads (a preset, a public checkpoint's config, overrides)
      data    DataConfig    how data is built when the run builds it, and the record shapes
      train   TrainConfig   batch plan, schedule, optimizer, numerics, checkpoints, logging
      source  Source        where the inputs come from, and which options the user gave explicitly

It is made from flags or a flagfile (cli/pretrain.py) and written into plan.json.
Nothing in it changes in place: `resolve` (train/resolve.py) decides what the data
and checkpoints imply, and `RunSpec.resolved` returns a new specification with those
values (vocab size and record shapes from the data, steps from a budget of examples).
"""

from dataclasses import dataclass, field

from hvd_pretrain.configs import Config
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.errors import ConfigError
from hvd_pretrain.models.config import ModelConfig
from hvd_pretrain.train.config import TrainConfig
from hvd_pretrain.train.plan import budget_steps


@dataclass(frozen=True)
class Source(Config):
    """Where the run's inputs come from (see hvd-pretrain --help for each)."""

    input_files: str = ""
    data_dir: str = ""
    vocab_dir: str = ""
    init_from: str = ""
    init_from_generator: str = ""
    vocab_size: int = 8000  # pieces of a SentencePiece vocab the run trains itself
    # Options the user gave explicitly: these must agree with the data (train/resolve.py).
    explicit: tuple = field(default=())

    def given(self, name):
        return name in self.explicit


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "source": Source}


@dataclass(frozen=True)
class RunSpec:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    source: Source

    def to_dict(self):
        return {name: getattr(self, name).to_dict() for name in SECTIONS}

    @classmethod
    def from_dict(cls, values):
        """A RunSpec from to_dict()'s form; an unknown section or key is a ConfigError naming it."""
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ConfigError("unknown run specification section(s): %s; known: %s"
                              % (", ".join(unknown), ", ".join(SECTIONS)))
        sections = {name: kind.from_dict(dict(values.get(name, {}))) for name, kind in SECTIONS.items()}
        if isinstance(sections["source"].explicit, list):
            sections["source"] = sections["source"].replace(explicit=tuple(sections["source"].explicit))
        return cls(**sections)

    def validate(self):
        self.model.validate()
        self.data.validate()
        self.train.validate()
        return self

    def resolved(self, resolved, world_size):
        """(the specification the run trains with, note or None) from resolve()'s decisions.

        The model takes the data's vocab size, the trainer the data's record shapes, and a
        budget of examples or epochs becomes optimizer steps for this world size.
        """
        model = self.model.replace(vocab_size=resolved["vocab_size"])
        train = self.train.replace(max_seq_length=resolved["max_seq_length"],
                                   max_predictions_per_seq=resolved["max_predictions"])
        steps, warmup, note = budget_steps(train, world_size, resolved.get("num_instances"))
        return RunSpec(model, self.data, train.replace(num_train_steps=steps, warmup_steps=warmup),
                       self.source), note
