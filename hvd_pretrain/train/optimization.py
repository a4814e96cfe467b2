"""Learning-rate schedules and optimizers.

The schedule is a function of the optimizer's iteration counter, which
advances once per optimizer step (never per micro-batch).
"""

from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train.optimizers import AdamWeightDecay


class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup up to `peak` over `warmup_steps`, then polynomial decay to `end` at `total_steps`."""

    def __init__(self, peak, total_steps, warmup_steps, end=0.0, power=1.0, offset=0, name=None):
        super().__init__()
        # offset: the optimizer step this schedule starts at (a phase that continues the global step).
        self.offset = int(offset)
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end = float(end)
        self.power = float(power)
        self.name = name

    def __call__(self, step):
        step = tf.cast(step, tf.float32) - float(self.offset)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        decay_steps = tf.cast(max(1, self.total_steps - self.warmup_steps), tf.float32)
        progress = tf.clip_by_value((step - warmup) / decay_steps, 0.0, 1.0)
        decayed = (self.peak - self.end) * tf.pow(1.0 - progress, self.power) + self.end
        if self.warmup_steps > 0:
            # Update k (0-based) uses (k + 1) / warmup of the peak: the first update is not wasted.
            warm = self.peak * tf.minimum(step + 1.0, warmup) / warmup
            return tf.where(step < warmup, warm, decayed)
        return decayed

    def get_config(self):
        return dict(peak=self.peak, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    end=self.end, power=self.power, offset=self.offset, name=self.name)


def make_schedule(cfg, offset=0):
    return WarmupPolynomialDecay(cfg.learning_rate, cfg.num_train_steps, cfg.resolved_warmup_steps(),
                                 end=cfg.end_learning_rate, power=cfg.decay_power, offset=offset)


def make_optimizer(cfg, schedule=None):
    """AdamW or LAMB; LayerNorm and biases are excluded from weight decay (and from LAMB's trust ratio)."""
    if cfg.optimizer not in ("adamw", "lamb"):
        raise ValueError("unknown optimizer %r" % cfg.optimizer)
    return AdamWeightDecay(learning_rate=schedule or make_schedule(cfg), weight_decay_rate=cfg.weight_decay,
                           beta_1=cfg.adam_beta1, beta_2=cfg.adam_beta2, epsilon=cfg.adam_epsilon,
                           layerwise_adaptation=cfg.optimizer == "lamb", bias_correction=cfg.adam_bias_correction)


def current_lr(optimizer):
    """The learning rate the next optimizer update will use."""
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(schedule(optimizer.iterations))
    return float(tf.convert_to_tensor(optimizer.learning_rate))
