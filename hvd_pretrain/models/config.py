"""ModelConfig: one flat description of a BERT, ALBERT or ELECTRA encoder.

Pure Python: no TensorFlow import, so planners, validators and the CLIs can
use it without paying TensorFlow's start-up time.
"""

import json
from dataclasses import dataclass, field
from typing import Optional

from hvd_pretrain.configs import Config, option
from hvd_pretrain.errors import ConfigError

FAMILIES = ("bert", "albert", "electra")
SHARING_MODES = ("none", "all", "ffn", "attention")
SENTENCE_OBJECTIVES = ("nsp", "sop", "none")


@dataclass(frozen=True)
class ModelConfig(Config):
    family: str = "bert"
    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = option(0.1, "Override the preset's hidden dropout.")
    attention_dropout: float = option(0.1, "Override the preset's attention dropout.")
    max_position_embeddings: int = option(512, "Position table size (default: the preset's, 512).")
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # ALBERT: factorized embeddings (None means embedding_size == hidden_size).
    embedding_size: Optional[int] = option(None, "Override the preset's factorized embedding size E.")
    # Cross-layer sharing: none (BERT), all (ALBERT), ffn, attention.
    sharing: str = option("none", "Override the preset's cross-layer sharing (ALBERT: all).", choices=SHARING_MODES)
    # Sentence-level objective: nsp (BERT), sop (ALBERT), none (ELECTRA, RoBERTa-style).
    sentence_objective: str = option("nsp", "Override the family's sentence objective.",
                                     choices=SENTENCE_OBJECTIVES)
    # ELECTRA: generator hidden size as a fraction of the discriminator's.
    generator_hidden_size: float = 0.25
    # ELECTRA: weight of the discriminator (replaced-token detection) loss.
    disc_weight: float = 50.0
    preset: str = field(default="", compare=False)

    @property
    def embedding_width(self):
        return self.embedding_size or self.hidden_size

    @property
    def head_size(self):
        return self.hidden_size // self.num_heads

    def validate(self):
        if self.family not in FAMILIES:
            raise ConfigError("model.family=%r is unknown; choose one of %s" % (self.family, ", ".join(FAMILIES)))
        if self.sharing not in SHARING_MODES:
            raise ConfigError("model.sharing=%r is unknown; choose one of %s" % (self.sharing, ", ".join(SHARING_MODES)))
        if self.sentence_objective not in SENTENCE_OBJECTIVES:
            raise ConfigError(
                "model.sentence_objective=%r is unknown; choose one of %s"
                % (self.sentence_objective, ", ".join(SENTENCE_OBJECTIVES)))
        for key in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError("model.%s=%r must be a positive integer" % (key, getattr(self, key)))
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                "model.hidden_size=%d is not divisible by model.num_heads=%d; pick a head count that divides it"
                % (self.hidden_size, self.num_heads))
        if self.embedding_size is not None and self.embedding_size < 1:
            raise ConfigError("model.embedding_size=%r must be a positive integer or unset" % self.embedding_size)
        if self.family == "electra" and not 0.0 < self.generator_hidden_size <= 1.0:
            raise ConfigError("model.generator_hidden_size=%r must be a fraction in (0, 1]" % self.generator_hidden_size)
        return self

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    def architecture_dict(self):
        """The fields that decide variable shapes; used to refuse foreign checkpoints."""
        d = self.to_dict()
        for k in ("hidden_dropout", "attention_dropout", "initializer_range", "preset", "disc_weight"):
            d.pop(k, None)
        return d


def _bert(layers, hidden, heads):
    return dict(family="bert", num_layers=layers, hidden_size=hidden, num_heads=heads,
                intermediate_size=4 * hidden)


def _albert(layers, hidden, heads, intermediate):
    return dict(family="albert", vocab_size=30000, num_layers=layers, hidden_size=hidden, num_heads=heads,
                intermediate_size=intermediate, embedding_size=128, sharing="all",
                sentence_objective="sop", hidden_dropout=0.0, attention_dropout=0.0, hidden_act="gelu_new")


def _electra(layers, hidden, heads, embedding, generator):
    return dict(family="electra", num_layers=layers, hidden_size=hidden, num_heads=heads,
                intermediate_size=4 * hidden, embedding_size=embedding, sentence_objective="none",
                generator_hidden_size=generator)


# Google's released BERT family (bert/README: 24 smaller models), ALBERT v2 and ELECTRA.
PRESETS = {
    "tiny": _bert(2, 128, 2),
    "mini": _bert(4, 256, 4),
    "small": _bert(4, 512, 8),
    "medium": _bert(8, 512, 8),
    "base": _bert(12, 768, 12),
    "large": _bert(24, 1024, 16),
    "albert-tiny": _albert(4, 312, 12, 1248),
    "albert-base": _albert(12, 768, 12, 3072),
    "albert-large": _albert(24, 1024, 16, 4096),
    "albert-xlarge": _albert(24, 2048, 16, 8192),
    "albert-xxlarge": _albert(12, 4096, 64, 16384),
    "electra-tiny": _electra(2, 128, 2, 128, 0.25),
    "electra-small": _electra(12, 256, 4, 128, 0.25),
    "electra-base": _electra(12, 768, 12, None, 0.25),
    "electra-large": _electra(24, 1024, 16, None, 0.25),
}


def preset(name, **overrides):
    """A ModelConfig from a preset name, with overrides (e.g. vocab_size)."""
    if name not in PRESETS:
        raise ConfigError("model preset %r is unknown; choose one of %s" % (name, ", ".join(PRESETS)))
    values = dict(PRESETS[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["preset"] = name
    return ModelConfig.from_dict(values).validate()
