"""TrainConfig: everything the trainer needs besides the model and the data.

Pure Python (no TensorFlow, no Horovod), so the CLI can validate flags and
print the plan before paying for the heavy imports.
"""

import dataclasses
from dataclasses import dataclass

from hvd_pretrain.errors import ConfigError


@dataclass
class TrainConfig:
    run_dir: str = "runs/default"
    per_rank_batch: int = 32
    accum_steps: int = 1
    num_train_steps: int = 300
    warmup_steps: int = -1          # -1: warmup_proportion of num_train_steps
    warmup_proportion: float = 0.1
    learning_rate: float = 5e-4
    end_learning_rate: float = 0.0
    decay_power: float = 1.0        # 1.0 = linear decay
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    clip_norm: float = 1.0
    # Stop when this many optimizer steps in a row are skipped for non-finite gradients (0: never).
    max_consecutive_skipped_steps: int = 100
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    save_checkpoints_steps: int = 100
    keep_checkpoints: int = 3
    log_every: int = 20
    seed: int = 12345
    threads: int = 0                # intra-op threads per rank; 0 = cores / local ranks
    # Length as a budget instead of steps (0 = off): steps follow from the global batch.
    train_examples: int = 0
    train_epochs: float = 0.0
    # Numerics and communication.
    precision: str = "fp32"         # fp32 | fp16 (dynamic loss scaling) | bf16
    xla: bool = False
    fp16_allreduce: bool = False
    fusion_threshold_mb: int = 0    # 0 = Horovod's default
    cycle_time_ms: float = 0.0      # 0 = Horovod's default
    stall_check_seconds: int = 60
    stall_shutdown_seconds: int = 0  # 0 = never shut down on a stall
    # Two-phase training: start from another run's checkpoint (weights only).
    init_checkpoint: str = ""
    continue_global_step: bool = False
    # MFU denominator per rank: a datasheet peak (TFLOP/s), a GPU preset, or (default) measured on CPU.
    peak_tflops: float = 0.0
    gpu_type: str = ""
    # Elastic Horovod (horovodrun --min-np/--max-np --host-discovery-script): commit state every N steps.
    elastic: bool = False
    elastic_commit_every: int = 50

    @property
    def budgeted(self):
        return bool(self.train_examples or self.train_epochs)

    def resolved_warmup_steps(self):
        if self.warmup_steps >= 0:
            return self.warmup_steps
        return int(round(self.warmup_proportion * self.num_train_steps))

    def validate(self):
        positive = ("per_rank_batch", "accum_steps", "num_train_steps", "max_seq_length",
                    "max_predictions_per_seq", "save_checkpoints_steps", "keep_checkpoints", "log_every",
                    "elastic_commit_every")
        for key in positive:
            value = getattr(self, key)
            if int(value) < 1:
                raise ConfigError("--%s=%r must be a positive integer" % (key_to_flag(key), value))
        if self.learning_rate <= 0:
            raise ConfigError("--learning_rate=%r must be positive" % self.learning_rate)
        if self.optimizer not in ("adamw", "lamb"):
            raise ConfigError("--optimizer=%r is unknown; choose adamw or lamb" % self.optimizer)
        if not 0.0 <= self.warmup_proportion <= 1.0:
            raise ConfigError("--warmup_proportion=%r must be in [0, 1]" % self.warmup_proportion)
        if self.resolved_warmup_steps() > self.num_train_steps:
            raise ConfigError("--warmup_steps=%d exceeds --num_train_steps=%d"
                                   % (self.resolved_warmup_steps(), self.num_train_steps))
        if self.clip_norm < 0:
            raise ConfigError("--clip_norm=%r must be >= 0 (0 disables clipping)" % self.clip_norm)
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError("--precision=%r is unknown; choose fp32, fp16 or bf16" % self.precision)
        if self.train_examples < 0 or self.train_epochs < 0:
            raise ConfigError("--train_examples and --train_epochs must be >= 0")
        if self.train_examples and self.train_epochs:
            raise ConfigError("--train_examples=%d and --train_epochs=%g both set; give one budget"
                                   % (self.train_examples, self.train_epochs))
        if self.max_consecutive_skipped_steps < 0:
            raise ConfigError("--max_consecutive_skipped_steps=%r must be >= 0 (0: no limit)"
                                   % self.max_consecutive_skipped_steps)
        if self.threads < 0:
            raise ConfigError("--threads=%r must be >= 0" % self.threads)
        return self

    def to_dict(self):
        return dataclasses.asdict(self)


_FLAG_NAMES = {"per_rank_batch": "train_batch_size"}


def key_to_flag(key):
    return _FLAG_NAMES.get(key, key)
