"""TrainConfig: everything the trainer needs besides the model and the data.

A frozen section of the run specification (train/spec.py); fields declared with
`option` are hvd-pretrain's flags. Pure Python (no TensorFlow, no Horovod), so
the CLI can validate flags and print the plan before paying for the heavy imports.
"""

from dataclasses import dataclass

from hvd_pretrain.configs import Config, option
from hvd_pretrain.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig(Config):
    run_dir: str = option("runs/default", "Run directory: vocab, data, checkpoints, metrics (default:"
                          " $HVD_PRETRAIN_RUN_DIR or runs/default).")
    per_rank_batch: int = option(32, "Micro-batch size: examples per rank in one micro-step. The global batch is"
                                 " micro-batch x accumulation steps x ranks.", flag="micro_batch_size",
                                 deprecated=("train_batch_size",))
    accum_steps: int = option(1, "Accumulation steps: micro-batches per optimizer step.")
    num_train_steps: int = option(300, "Optimizer steps.")
    warmup_steps: int = option(-1, "Warmup optimizer steps (-1: --warmup_proportion of the steps).")
    warmup_proportion: float = option(0.1, "Fraction of steps for linear warmup when --warmup_steps=-1.")
    learning_rate: float = option(5e-4, "Peak learning rate.")
    end_learning_rate: float = option(0.0, "Learning rate at the last step.")
    decay_power: float = option(1.0, "Polynomial decay power after warmup (1.0 = linear).")
    optimizer: str = option("adamw", "Optimizer: AdamW, or LAMB (layer-wise trust ratios) for large global"
                            " batches.", choices=("adamw", "lamb"))
    weight_decay: float = option(0.01, "Decoupled weight decay (not on LayerNorm or biases).")
    adam_beta1: float = option(0.9, "Adam/LAMB beta1 (decay of the gradient's moving average).")
    adam_beta2: float = option(0.999, "Adam/LAMB beta2 (decay of the squared gradient's moving average; RoBERTa"
                               " uses 0.98).")
    adam_epsilon: float = option(1e-6, "Adam/LAMB epsilon, added to sqrt(v_hat) (Google's BERT: 1e-6;"
                                 " transformers' Trainer: 1e-8).")
    adam_bias_correction: bool = option(True, "Divide Adam's moments by (1 - beta^t) as in the Adam paper and"
                                        " torch.optim.AdamW; --noadam_bias_correction is the optimizer of Google's"
                                        " BERT and ALBERT run_pretraining.py.")
    clip_norm: float = option(1.0, "Clip the allreduced gradient to this global norm (0: off).")
    # Stop when this many optimizer steps in a row are skipped for non-finite gradients (0: never).
    max_consecutive_skipped_steps: int = option(100, "Stop (exit 2, naming the likely cause) after this many"
                                                " optimizer steps in a row were skipped for non-finite gradients;"
                                                " 0: never.")
    # Set from the data (DataConfig holds the options): the trainer's copy of the record shapes.
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    save_checkpoints_steps: int = option(100, "Checkpoint every N optimizer steps (rank 0).")
    keep_checkpoints: int = option(3, "Checkpoints kept.")
    log_every: int = option(20, "Optimizer steps per logging window.")
    seed: int = option(12345, "Random seed (model init, data order; and the data when it is built).")
    record_batch_digests: bool = option(False, "Each rank appends a SHA-256 of every micro-batch it trains on, and"
                                               " the (epoch, shard, record) of each example, to"
                                               " ranks/<rank>.batches.jsonl: shows that a resumed run continues the"
                                               " exact data stream and that every example is read once per epoch.")
    threads: int = option(0, "CPU intra-op threads per rank (0: cores / local ranks).")
    # Length as a budget instead of steps (0 = off): steps follow from the global batch.
    train_examples: int = option(0, "Length as a budget of examples (0: use --num_train_steps). Steps and warmup"
                                 " then follow from the global batch, so changing np or accum keeps examples"
                                 " constant.")
    train_epochs: float = option(0.0, "Length as epochs over the data's instances (0: off).")
    # Numerics and communication.
    precision: str = option("fp32", "Compute precision; fp16 uses dynamic loss scaling, variables and accumulated"
                            " gradients stay fp32.", choices=("fp32", "fp16", "bf16"))
    xla: bool = option(False, "XLA-compile the micro-step (jit_compile).")
    recompute: str = option("none", "Activation recompute: block keeps only each transformer block's input for"
                            " backward and computes the block again there (less memory, one more forward pass of"
                            " the blocks; same gradients, dropout masks included).", choices=("none", "block"))
    fp16_allreduce: bool = option(False, "Compress gradients to fp16 for the allreduce (Horovod compression).")
    allreduce_bucket_mb: float = option(25.0, "Gradients are allreduced in groups of about this many MB, last"
                                        " layers first, while the last micro-batch's backward pass runs (0: one"
                                        " group after backward, no overlap).")
    fusion_threshold_mb: int = option(0, "Horovod tensor fusion buffer in MB (0: Horovod's default, 128 MB; or set"
                                      " HOROVOD_FUSION_THRESHOLD).")
    cycle_time_ms: float = option(0.0, "Horovod cycle time in ms (0: Horovod's default; or HOROVOD_CYCLE_TIME).")
    stall_check_seconds: int = option(60, "Horovod warns when ranks wait on each other this long.")
    stall_shutdown_seconds: int = option(0, "Horovod shuts the job down after a stall this long (0: never).")
    # Two-phase training: start from another run's checkpoint (weights only).
    init_checkpoint: str = option("", "Start from another run's weights (phase 2 from phase 1): a run dir or"
                                  " checkpoint dir. Ignored once this run has its own checkpoint.")
    continue_global_step: bool = option(False, "With --init_checkpoint: continue the global step of that"
                                        " checkpoint instead of starting this phase at step 0.")
    # MFU denominator per rank: a datasheet peak (TFLOP/s), a GPU preset, or (default) measured on CPU.
    peak_tflops: float = option(0.0, "Peak TFLOP/s per rank for MFU (0: --gpu_type preset, or measured on CPU).")
    gpu_type: str = option("", "GPU preset (V100-16G, V100-32G, A100-40G, A100-80G, H100) for MFU and the"
                           " --dry_run capacity prediction.")
    allow_cpu: bool = option(False, "Train anyway when the machine has NVIDIA GPUs that TensorFlow does not see,"
                             " or trains on GPUs with a Horovod built without NCCL (otherwise: exit 2 with the fix).")
    # Elastic Horovod (horovodrun --min-np/--max-np --host-discovery-script): commit state every N steps.
    elastic: bool = option(False, "Elastic Horovod: run under horovodrun --min-np/--max-np"
                           " --host-discovery-script; ranks may leave and join (needs --data_dir).")
    elastic_commit_every: int = option(50, "With --elastic: commit the training state in host memory every N"
                                       " optimizer steps (work since the last commit is redone after a rank fails).")
    # Held-out evaluation (train/evaluate.py).
    eval_every: int = option(-1, "Evaluate on the held-out data every N optimizer steps, at the start and at the"
                             " end (-1: every --save_checkpoints_steps when the data has an eval split, else"
                             " never; 0: never).")
    eval_examples: int = option(512, "Held-out examples per evaluation, the first K in a fixed order (0: all).")
    eval_data_dir: str = option("", "Held-out TFRecord shards, statically masked (default: <data_dir>/eval when"
                                " present).")
    keep_best: str = option("", "Keep the checkpoint with the best eval metric beside the rotation, e.g."
                            " eval/mlm_accuracy (direction inferred; add :max or :min to set it).")

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
        if self.allreduce_bucket_mb < 0:
            raise ConfigError("--allreduce_bucket_mb=%r must be >= 0 (0: one group after backward)"
                              % self.allreduce_bucket_mb)
        if self.learning_rate <= 0:
            raise ConfigError("--learning_rate=%r must be positive" % self.learning_rate)
        if self.optimizer not in ("adamw", "lamb"):
            raise ConfigError("--optimizer=%r is unknown; choose adamw or lamb" % self.optimizer)
        if not 0.0 <= self.warmup_proportion <= 1.0:
            raise ConfigError("--warmup_proportion=%r must be in [0, 1]" % self.warmup_proportion)
        if self.resolved_warmup_steps() > self.num_train_steps:
            raise ConfigError("--warmup_steps=%d exceeds --num_train_steps=%d"
                                   % (self.resolved_warmup_steps(), self.num_train_steps))
        if not (0.0 <= self.adam_beta1 < 1.0 and 0.0 <= self.adam_beta2 < 1.0):
            raise ConfigError("--adam_beta1=%r and --adam_beta2=%r must be in [0, 1)" % (self.adam_beta1, self.adam_beta2))
        if not self.adam_epsilon > 0:
            raise ConfigError("--adam_epsilon=%r must be positive" % self.adam_epsilon)
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
        if self.recompute not in ("none", "block"):
            raise ConfigError("--recompute=%r is unknown; choose none or block" % self.recompute)
        if self.threads < 0:
            raise ConfigError("--threads=%r must be >= 0" % self.threads)
        if self.eval_every < -1:
            raise ConfigError("--eval_every=%r must be -1 (automatic), 0 (never) or a step count" % self.eval_every)
        if self.eval_examples < 0:
            raise ConfigError("--eval_examples=%r must be >= 0 (0: all)" % self.eval_examples)
        from hvd_pretrain.train.eval_metrics import parse_keep_best
        parse_keep_best(self.keep_best)
        if self.keep_best and self.eval_every == 0:
            raise ConfigError("--keep_best=%s needs evaluation, but --eval_every=0; drop one of them"
                              % self.keep_best)
        return self



def key_to_flag(key):
    """The command-line flag of a TrainConfig field."""
    return {f.name: flag for f, flag, _ in TrainConfig.options()}.get(key, key)
