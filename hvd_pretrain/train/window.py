"""Device-resident step results, read to the host once per read point.

Every optimizer step adds its results into a few device variables (`DeviceWindow`):
losses, counts, accuracy, non-padding tokens, applied and skipped steps, the last
pre-clip gradient norm, the stop flag and the run of consecutive skipped steps.
Nothing in a step waits for the device. The session reads them with ONE stacked
read (`DeviceWindow.read`) at its read points (train/session.py: every logging
window, checkpoint, elastic commit and the last step), and the sums restart from
zero after each read.

Every device-to-host read of the trainer goes through `to_host`, which counts
them (`HOST_READS`), so that a test can hold the trainer to one read per window.
"""

import math

from hvd_pretrain.tfcompat import keras, tf


class HostReads:
    """How many device-to-host reads the trainer made (`to_host` calls)."""

    def __init__(self):
        self.count = 0


HOST_READS = HostReads()


def to_host(tensor):
    """tensor -> numpy value: the trainer's one way to wait for the device; each call is counted."""
    HOST_READS.count += 1
    return tensor.numpy()


def learning_rate_tensor(optimizer):
    """The learning rate of the next update, as a float32 tensor (no host read)."""
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return tf.cast(schedule(optimizer.iterations), tf.float32)
    return tf.cast(tf.convert_to_tensor(optimizer.learning_rate), tf.float32)


def accuracy_names(objectives, metric_names):
    """Accuracy entries the window reports: <objective> with a <objective>_correct sum, and the RTD baseline."""
    names = [name for name in objectives if name + "_correct" in metric_names]
    if "rtd" in objectives and "rtd_replaced" in metric_names:
        names.append("rtd_all_original_baseline")
    return tuple(names)


def step_accuracies(metric_sums, counts, names):
    """Per-step accuracy tensors (float32) in `names` order; a zero count gives 0.

    metric_sums: name -> allreduced sum (e.g. mlm_correct); counts: objective -> global target count.
    """
    out = []
    for name in names:
        if name == "rtd_all_original_baseline":
            out.append(1.0 - tf.math.divide_no_nan(metric_sums["rtd_replaced"], counts["rtd"]))
        else:
            out.append(tf.math.divide_no_nan(metric_sums[name + "_correct"], counts[name]))
    return out


class DeviceWindow:
    """The device variables one read point reads: sums since the last read, and the last step's marks.

    objectives: the model's objective names; accuracies: names from `accuracy_names`.
    sums (float64): applied steps, skipped steps, non-padding tokens and, over applied steps only,
        the total weighted loss, each objective's loss and each accuracy.
    marks: the last step's pre-clip gradient norm (NaN when skipped), the last skipped step's loss,
        the stop flag (max since the read), the longest run of consecutive skipped steps since the read.
    consecutive (int64): skipped steps in a row up to now; it survives reads.
    """

    def __init__(self, objectives, accuracies):
        self.objectives = tuple(objectives)
        self.accuracies = tuple(accuracies)
        self.sum_names = (("applied", "skipped", "nonpad_tokens", "loss")
                          + tuple("loss/" + n for n in self.objectives)
                          + tuple("accuracy/" + n for n in self.accuracies))
        self.sums = tf.Variable(tf.zeros([len(self.sum_names)], tf.float64), trainable=False, name="window/sums")
        self.marks = tf.Variable([math.nan, math.nan, 0.0, 0.0], trainable=False, dtype=tf.float32,
                                 name="window/marks")
        self.consecutive = tf.Variable(0, trainable=False, dtype=tf.int64, name="window/consecutive_skipped")

    def add(self, finite, loss, losses, accuracies, nonpad_tokens, grad_norm, stop):
        """Add one optimizer step (all arguments are device tensors; call inside a tf.function).

        finite: bool scalar, the step was applied; loss: weighted loss; losses, accuracies: lists in the
        window's order; nonpad_tokens: global non-padding tokens; grad_norm: pre-clip norm (NaN if skipped);
        stop: float scalar > 0 when a rank asked to stop.
        """
        applied = tf.cast(finite, tf.float64)

        def only_applied(x):
            return tf.where(finite, tf.cast(x, tf.float64), tf.constant(0.0, tf.float64))

        step = tf.stack([applied, 1.0 - applied, only_applied(nonpad_tokens), only_applied(loss)]
                        + [only_applied(x) for x in losses] + [only_applied(x) for x in accuracies])
        self.sums.assign_add(step)
        consecutive = tf.where(finite, tf.constant(0, tf.int64), self.consecutive + 1)
        self.consecutive.assign(consecutive)
        old = self.marks.read_value()
        self.marks.assign(tf.stack([
            tf.cast(grad_norm, tf.float32),
            tf.where(finite, old[1], tf.cast(loss, tf.float32)),
            tf.maximum(old[2], tf.cast(stop, tf.float32)),
            tf.maximum(old[3], tf.cast(consecutive, tf.float32))]))

    def reset(self):
        """Zero the sums and the run of skips (an elastic rollback drops the steps since the commit)."""
        self.sums.assign(tf.zeros_like(self.sums))
        self.marks.assign([math.nan, math.nan, 0.0, 0.0])
        self.consecutive.assign(0)

    @tf.function
    def _snapshot(self, iterations, loss_scale, lr):
        values = tf.concat([self.sums.read_value(), tf.cast(self.marks.read_value(), tf.float64),
                            tf.cast(tf.stack([iterations, self.consecutive.read_value()]), tf.float64),
                            tf.cast(tf.stack([loss_scale, lr]), tf.float64)], axis=0)
        with tf.control_dependencies([values]):
            self.sums.assign(tf.zeros_like(self.sums))
            old = self.marks.read_value()
            self.marks.assign(tf.stack([old[0], old[1], 0.0, tf.cast(self.consecutive, tf.float32)]))
        return values

    def read(self, optimizer, loss_scale=None):
        """ONE device-to-host read of everything since the last read; the sums restart from zero.

        Returns a WindowRead. loss_scale: the DynamicLossScale (fp16) or None.
        """
        scale = loss_scale.scale if loss_scale is not None else tf.constant(1.0)
        values = to_host(self._snapshot(optimizer.iterations, scale, learning_rate_tensor(optimizer)))
        return WindowRead(self, [float(v) for v in values], loss_scale is not None)


class WindowRead:
    """What one read brought back (plain Python numbers).

    step: the optimizer's iteration counter; applied, skipped: steps since the previous read;
    sums: name -> sum over those steps (losses and accuracies over applied steps only);
    grad_norm: the last step's pre-clip norm; skipped_loss: the last skipped step's loss;
    stop: a rank asked to stop; consecutive: skipped steps in a row now; longest_skip_run: the longest
    run since the previous read; loss_scale (None without fp16); lr: the next update's learning rate.
    """

    def __init__(self, window, values, has_loss_scale):
        n = len(window.sum_names)
        self.sums = dict(zip(window.sum_names, values[:n]))
        self.grad_norm, self.skipped_loss, stop, longest, step, consecutive, scale, self.lr = values[n:]
        self.applied = int(round(self.sums.pop("applied")))
        self.skipped = int(round(self.sums.pop("skipped")))
        self.stop = stop > 0
        self.longest_skip_run = int(round(longest))
        self.step = int(round(step))
        self.consecutive = int(round(consecutive))
        self.loss_scale = scale if has_loss_scale else None
