"""FinetuneConfig: the fine-tuning recipe of a downstream probe (hvd-finetune's flags). Pure Python."""

from dataclasses import dataclass

from hvd_pretrain.configs import Config, option
from hvd_pretrain.errors import ConfigError


@dataclass(frozen=True)
class FinetuneConfig(Config):
    learning_rate: float = option(5e-5, "Peak learning rate (BERT's GLUE recipe: 2e-5 to 5e-5 for base models;"
                                  " tiny and mini models want about 1e-4 to 5e-4).")
    epochs: float = option(3.0, "Passes over the training split.")
    batch_size: int = option(32, "Examples per optimizer step.")
    max_seq_length: int = option(128, "Tokens per example, [CLS] and [SEP]s included; longer texts are cut"
                                 " (the longer text of a pair first).")
    warmup_proportion: float = option(0.1, "Fraction of the steps with linear warmup; then linear decay to 0.")
    weight_decay: float = option(0.01, "Decoupled weight decay (not on LayerNorm or biases).")
    clip_norm: float = option(1.0, "Clip gradients to this global norm (0: off).")
    seeds: str = option("1,2,3", "Comma-separated seeds: one fine-tuning run each (head initialisation, dropout,"
                        " data order); accuracy and F1 are reported as mean +- std over them.")
    max_train_examples: int = option(0, "Fine-tune on at most this many training examples (0: all), drawn with"
                                     " a fixed seed, the same for every checkpoint and seed.")
    max_dev_examples: int = option(0, "Evaluate on at most this many dev examples (0: all).")
    freeze_encoder: bool = option(False, "Train only the classification head on the frozen encoder's output (a"
                                  " linear probe for BERT and ALBERT: the pooled [CLS] vector; Devlin et al. 2019,"
                                  " 5.3, feature-based): measures what pre-training put into the encoder.")
    dropout: float = option(-1.0, "Dropout in the encoder and before the output layer (-1: the checkpoint's"
                            " hidden dropout).")

    def seed_list(self):
        try:
            seeds = [int(s) for s in str(self.seeds).split(",") if s.strip()]
        except ValueError:
            raise ConfigError("--seeds=%r must be comma-separated integers, e.g. 1,2,3" % self.seeds) from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError("--seeds=%r must name at least one seed, each once" % self.seeds)
        return seeds

    def validate(self):
        if self.learning_rate <= 0:
            raise ConfigError("--learning_rate=%r must be positive" % self.learning_rate)
        if self.epochs <= 0:
            raise ConfigError("--epochs=%r must be positive" % self.epochs)
        for key in ("batch_size", "max_seq_length"):
            if getattr(self, key) < 1:
                raise ConfigError("--%s=%r must be a positive integer" % (key, getattr(self, key)))
        if self.max_seq_length < 3:
            raise ConfigError("--max_seq_length=%d leaves no room for text between [CLS] and [SEP]"
                              % self.max_seq_length)
        if not 0.0 <= self.warmup_proportion <= 1.0:
            raise ConfigError("--warmup_proportion=%r must be in [0, 1]" % self.warmup_proportion)
        if self.max_train_examples < 0 or self.max_dev_examples < 0:
            raise ConfigError("--max_train_examples and --max_dev_examples must be >= 0 (0: all)")
        if self.clip_norm < 0:
            raise ConfigError("--clip_norm=%r must be >= 0 (0: off)" % self.clip_norm)
        if not (self.dropout == -1.0 or 0.0 <= self.dropout < 1.0):
            raise ConfigError("--dropout=%r must be in [0, 1), or -1 for the checkpoint's" % self.dropout)
        self.seed_list()
        return self
