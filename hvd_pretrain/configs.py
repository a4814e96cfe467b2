"""What every configuration section shares: frozen dataclasses, one serialisation, options that are flags.

ModelConfig (models/config.py), DataConfig (data/config.py) and TrainConfig
(train/config.py) are frozen dataclasses built on `Config`; the run
specification (train/spec.py) holds one of each. A field declared with
`option(...)` is a command-line option: the tools generate their flags from
these declarations (cli/options.py), so every tool that takes `--dupe_factor`
gives it the same name, help text and default.

Pure Python; nothing here knows about absl or TensorFlow.
"""

import dataclasses

from hvd_pretrain.errors import ConfigError


def option(default, help, flag=None, choices=None, deprecated=()):
    """A dataclass field that is a command-line option.

    help: the flag's help text. flag: the flag's name when it differs from the field's.
    choices: the allowed values (an enum flag). deprecated: older flag names still
    accepted for one release, with a warning.
    """
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "choices": choices,
                                                         "deprecated": tuple(deprecated)})


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of the configuration sections: to_dict/from_dict and replace, once."""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The section from a dict; a key that is not a field is a ConfigError naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError("unknown %s key(s): %s; known keys: %s"
                              % (cls.__name__, ", ".join(unknown), ", ".join(sorted(names))))
        return cls(**values)

    def replace(self, **changes):
        """A copy with `changes` applied (sections are frozen: nothing is changed in place)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def options(cls):
        """[(field, flag name, metadata)] of the fields declared with `option`."""
        return [(f, f.metadata.get("flag") or f.name, f.metadata) for f in dataclasses.fields(cls)
                if "help" in f.metadata]
