"""Gradient accumulation and allreduce: the numerics of one optimizer step.

One optimizer step on every rank:

1. The rank takes its N micro-batches. From the features alone it counts the
   targets of each objective (masked tokens for MLM, examples for NSP/SOP,
   real tokens for RTD) and allreduces those counts (a few scalars) so that
   every rank knows the GLOBAL count of each objective for this step.
2. For each micro-batch it computes the loss SUMS and the gradient of
   ``sum_k w_k * sum_k / global_count_k``, and adds the gradient into fp32
   accumulators.
3. An allreduce (op=Sum) of the accumulated gradients and the loss sums. Because
   every term was already divided by the global count, the sum over ranks IS
   the gradient of the global mean loss: the mean over every masked token of
   the N x world micro-batches, exactly as one big batch on one device would
   compute it, even when micro-batches hold different numbers of masked tokens.
   The last micro-batch's forward and backward pass run in the same
   `tf.function` as this allreduce, which is issued in groups of about
   `bucket_mb` MB in the reverse of the forward pass's first use (the heads and the last layer
   first, the embeddings last): each group is reduced as soon as backward has
   produced it, behind the rest of backward (PyTorch DDP's gradient buckets,
   Li et al. 2020, arXiv:2006.15704; Horovod's DistributedGradientTape does the
   same per tensor). Earlier micro-batches only accumulate; at accumulation 1
   no accumulator is touched. The counts allreduce stays a call of its own:
   a rank that fails outside the step (a damaged record, say) leaves the
   others waiting in that one small collective, which Horovod's shutdown
   ends at once, so they stop with one line instead of being killed.
4. Clip by global norm (after the allreduce, so every rank clips the same
   gradient), then apply. The optimizer's iteration counter, which drives the
   learning-rate schedule, advances once per optimizer step.

Dropout and ELECTRA's generator samples are keyed statelessly by (run seed, optimizer
step, micro-batch index, rank) (models/ops.step_seed). The step is read from the
optimizer's iteration counter and the micro-batch index and rank are tensor inputs
of the traced micro-step, so every step draws new masks without retracing, and a
run resumed from a checkpoint (which holds the counter) draws the masks the
uninterrupted run drew: no random state needs saving.

The counts allreduce also carries the non-padding token count (for tokens/sec)
and a stop flag (so a signal seen by one rank stops every rank at the same step).

fp16: each micro-batch's loss is multiplied by a dynamic loss scale and its
gradients divided by it again before they are added to the fp32 accumulators.
A non-finite value on any rank makes the allreduced SUM non-finite on every
rank, so every rank takes the same decision: skip the update (the optimizer's
step counter does not move), halve the scale.

With `jit_compile` (XLA) the micro-batch's forward and backward pass is one compiled cluster whose
gradients all appear at its end, so the groups are reduced after backward (no overlap), as Horovod's
operations are not XLA operations on the CPU.

No host synchronisation inside a step (`AccumulatingStep.run`, what the trainer
calls): the skip decision (a `tf.cond` on the allreduced gradient), the update,
the loss-scale update and the step's losses, counts and accuracy all stay on the
device; the results are added into a DeviceWindow (train/window.py) that the
session reads once per read point. `step` additionally reads the step's own
results back (one read per step) for callers that want them at once.
"""

import numpy as np

from hvd_pretrain.models import ops
from hvd_pretrain.tfcompat import tf
from hvd_pretrain.train.communicate import (
    DEFAULT_BUCKET_MB, HorovodCommunicator, LocalCommunicator, first_use_order, gradient_buckets)
from hvd_pretrain.train.optimizers import apply_clipped
from hvd_pretrain.train.window import DeviceWindow, accuracy_names, step_accuracies, to_host

__all__ = ["AccumulatingStep", "DynamicLossScale", "HorovodCommunicator", "LocalCommunicator", "accuracies",
           "gradient_buckets", "weighted_loss"]


def weighted_loss(sums, counts, objectives, weights):
    """sum_k w_k * sums[k] / counts[k]; a zero count contributes nothing."""
    total = tf.constant(0.0, tf.float32)
    for i, name in enumerate(objectives):
        total += float(weights.get(name, 1.0)) * tf.math.divide_no_nan(
            tf.cast(sums[name], tf.float32), counts[i])
    return total


class DynamicLossScale:
    """fp16 loss scale: halve on a non-finite step, double after `growth_interval` finite steps."""

    def __init__(self, initial=2.0 ** 15, growth_interval=2000, factor=2.0, minimum=1.0):
        self.scale = tf.Variable(float(initial), trainable=False, dtype=tf.float32, name="loss_scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="loss_scale_good_steps")
        self.growth_interval = int(growth_interval)
        self.factor = float(factor)
        self.minimum = float(minimum)

    def update(self, finite):
        """One step's outcome (a bool or a bool tensor); on the device, no host read."""
        finite = tf.convert_to_tensor(finite, tf.bool)
        good = tf.where(finite, self.good_steps + 1, tf.constant(0, tf.int64))
        grow = good >= self.growth_interval
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * self.factor, self.scale),
                                   tf.maximum(self.scale / self.factor, self.minimum)))
        self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), good))


class AccumulatingStep:
    """Runs optimizer steps of `accum_steps` micro-batches each, over `comm`.

    loss_scale: a DynamicLossScale for fp16, else None. jit_compile: XLA-compile each micro-batch's
    forward and backward pass. bucket_mb: size of the gradient groups whose allreduce overlaps the last
    micro-batch's backward (0: one group after backward). seed: the run's --seed, mixed into every forward
    pass's dropout seed (models/ops.step_seed). The trainer calls `run` (no host read) and
    reads `window` at its read points; `step` is `run` plus one read of that step's results.
    """

    def __init__(self, model, optimizer, comm, accum_steps, clip_norm=1.0, loss_scale=None, jit_compile=False,
                 bucket_mb=DEFAULT_BUCKET_MB, seed=0):
        if accum_steps < 1:
            raise ValueError("accum_steps must be >= 1, got %r" % accum_steps)
        self.model = model
        self.optimizer = optimizer
        self.comm = comm
        self.accum_steps = int(accum_steps)
        self.clip_norm = float(clip_norm)
        self.loss_scale = loss_scale
        self.seed = int(seed)
        self.objectives = tuple(model.objectives)
        self.weights = dict(model.loss_weights)
        self._accumulators = None
        self._loss_sums = None
        self._last = None
        self.window = None
        self.metric_names = ()  # extra sums the model reports (e.g. mlm_correct), found in build()
        self.bucket_mb = float(bucket_mb)
        self._buckets = None
        self._jit = bool(jit_compile)
        # With XLA, forward + backward is one compiled function called from the (uncompiled) steps below.
        self._grads = tf.function(self._grads_body, jit_compile=True) if self._jit else self._grads_body
        self._micro_step = tf.function(self._micro_step_body)
        self._counts = tf.function(self._counts_body)
        self._last_micro_step = tf.function(self._last_micro_step_body)
        self._single_micro_step = tf.function(self._single_micro_step_body)

    def reconfigure(self, world_size, accum_steps):
        """Train on in a new world (elastic): `accum_steps` micro-batches per optimizer step from now on."""
        if accum_steps < 1:
            raise ValueError("accum_steps must be >= 1, got %r" % accum_steps)
        if world_size != self.comm.size:
            raise ValueError("reconfigure for %d ranks, but the communicator spans %d" % (world_size, self.comm.size))
        self.accum_steps = int(accum_steps)
        return self

    # -- variables -------------------------------------------------------
    def build(self, sample_features=None):
        """Create the fp32 accumulators and the device window (call after the model's variables exist).

        With `sample_features`, the model's extra metric sums (accuracy counts) are found and
        accumulated and reduced together with the losses.
        """
        forward_order = None
        if sample_features is not None and self._accumulators is None:
            with tf.GradientTape() as tape:  # the variables in the order the forward pass creates and uses them
                sums = self.model.loss_sums(sample_features, training=False)
            self.metric_names = self.metric_names or tuple(sorted(k for k in sums if k not in self.objectives))
            forward_order = first_use_order(self.model.trainable_variables, tape.watched_variables())
        if self._accumulators is None:
            self._accumulators = [
                tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name="accum/" + v.name.replace(":", "_"))
                for v in self.model.trainable_variables]
            self._loss_sums = tf.Variable(tf.zeros([len(self.objectives) + len(self.metric_names)], tf.float32),
                                          trainable=False, name="accum/loss_sums")
            # The last step: loss, skipped, grad norm, non-padding tokens, stop, then losses, counts, metrics.
            self._last = tf.Variable(tf.zeros([5 + 2 * len(self.objectives) + len(self.metric_names)], tf.float32),
                                     trainable=False, name="accum/last_step")
            self.window = DeviceWindow(self.objectives, accuracy_names(self.objectives, self.metric_names))
            self._buckets = gradient_buckets([v.shape.num_elements() * 4 for v in self.model.trainable_variables],
                                             self.bucket_mb, forward_order)
        return self

    def clear(self):
        """Zero the accumulators and the window: a step interrupted between micro-batches and allreduce
        leaves sums behind, and an elastic rollback drops the steps since the last commit."""
        for acc in self._accumulators or ():
            acc.assign(tf.zeros_like(acc))
        if self._loss_sums is not None:
            self._loss_sums.assign(tf.zeros_like(self._loss_sums))
        if self.window is not None:
            self.window.reset()

    # -- the pieces --------------------------------------------------------
    def local_counts(self, micro_batches, stop=False):
        """[count per objective..., non-padding tokens, stop flag] for this rank's micro-batches."""
        return self._local_counts(micro_batches, tf.constant(1.0 if stop else 0.0))

    def _local_counts(self, micro_batches, stop):
        totals = [tf.constant(0.0, tf.float32)] * (len(self.objectives) + 1)
        for features in micro_batches:
            counts = self.model.target_counts(features)
            for i, name in enumerate(self.objectives):
                totals[i] += tf.cast(counts[name], tf.float32)
            totals[-1] += tf.cast(tf.reduce_sum(features["input_mask"]), tf.float32)
        return tf.stack(totals + [tf.cast(stop, tf.float32)])

    def _counts_body(self, micro_batches, stop):
        return self.comm.allreduce_sum(self._local_counts(micro_batches, stop))

    def forward_seed(self, micro_key):
        """The int32 [2] seed of a micro-batch's forward pass; micro_key: int32 [micro-batch index, rank]."""
        return ops.step_seed(self.seed, self.optimizer.iterations, micro_key[0], micro_key[1])

    def _grads_body(self, features, global_counts, scale, micro_key):
        """One micro-batch: (its fp32 gradients, unscaled, None for a variable it does not reach;
        its loss and metric sums, [objectives + metrics])."""
        with tf.GradientTape() as tape:
            sums = self.model.loss_sums(features, training=True, seed=self.forward_seed(micro_key))
            loss = weighted_loss(sums, global_counts, self.objectives, self.weights)
            scaled = loss * scale if self.loss_scale is not None else loss
        grads = tape.gradient(scaled, self.model.trainable_variables)
        grads = [None if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32) for g in grads]
        if self.loss_scale is not None:
            # Unscale each micro-batch's gradient before it joins the fp32 sum (fp32 has no scale:
            # no pass over the gradients).
            grads = [None if g is None else g / scale for g in grads]
        return grads, tf.stack([tf.cast(sums[name], tf.float32) for name in self.objectives + self.metric_names])

    def _micro_step_body(self, features, global_counts, scale, micro_key):
        grads, sums = self._grads(features, global_counts, scale, micro_key)
        for acc, grad in zip(self._accumulators, grads):
            if grad is not None:
                acc.assign_add(grad)
        self._loss_sums.assign_add(sums)

    def _reduce_body(self):
        reduced = self.comm.grouped_allreduce_sum([a.read_value() for a in self._accumulators]
                                                  + [self._loss_sums.read_value()])
        for acc in self._accumulators:
            acc.assign(tf.zeros_like(acc))
        self._loss_sums.assign(tf.zeros_like(self._loss_sums))
        return reduced[:-1], reduced[-1]

    def _overlapped_reduce(self, grads, sums):
        """Allreduce `grads` (one per variable) and `sums` in the buckets' groups, last variables first.

        Each group is its own grouped allreduce, so it starts once backward has produced its gradients.
        The loss sums, known before backward begins, join the first group.
        """
        reduced = [None] * len(grads)
        sums_out = None
        for k, group in enumerate(self._buckets):
            tensors = [grads[i] for i in group] + ([sums] if k == 0 else [])
            out = self.comm.grouped_allreduce_sum(tensors)
            for j, i in enumerate(group):
                reduced[i] = out[j]
            if k == 0:
                sums_out = out[-1]
        if sums_out is None:  # a model without trainable variables
            sums_out = self.comm.grouped_allreduce_sum([sums])[0]
        return reduced, sums_out

    def _last_micro_step_body(self, features, global_counts, scale, micro_key):
        """The step's last micro-batch: its gradients plus the accumulated ones, reduced while backward runs."""
        grads, sums = self._grads(features, global_counts[: len(self.objectives)], scale, micro_key)
        total = [acc.read_value() if g is None else acc.read_value() + g
                 for acc, g in zip(self._accumulators, grads)]
        total_sums = self._loss_sums.read_value() + sums
        for acc in self._accumulators:
            acc.assign(tf.zeros_like(acc))
        self._loss_sums.assign(tf.zeros_like(self._loss_sums))
        self._apply_reduced(*self._overlapped_reduce(total, total_sums), global_counts)

    def _single_micro_step_body(self, features, global_counts, scale, micro_key):
        """Accumulation 1: forward, backward, the bucketed allreduce and the update, no accumulators."""
        grads, sums = self._grads(features, global_counts[: len(self.objectives)], scale, micro_key)
        grads = [tf.zeros(v.shape, tf.float32) if g is None else g
                 for v, g in zip(self.model.trainable_variables, grads)]
        self._apply_reduced(*self._overlapped_reduce(grads, sums), global_counts)

    def _scale(self):
        return self.loss_scale.scale.read_value() if self.loss_scale is not None else tf.constant(1.0)

    @tf.function
    def _reduce(self):
        return self._reduce_body()

    def _clip_and_apply_body(self, grads, norm=None):
        """Clip by the global norm (computed here unless given), apply; returns the pre-clip norm."""
        if norm is None:
            norm = tf.linalg.global_norm(grads)
        return apply_clipped(self.optimizer, grads, self.model.trainable_variables, self.clip_norm, norm)

    @tf.function
    def _clip_and_apply(self, grads):
        return self._clip_and_apply_body(grads)

    def _apply_reduced(self, grads, loss_sums, global_counts):
        """On the device: skip or apply, loss-scale update, the step into the window."""
        n = len(self.objectives)
        counts = global_counts[:n]
        losses = [tf.math.divide_no_nan(loss_sums[i], counts[i]) for i in range(n)]
        loss = tf.add_n([float(self.weights.get(name, 1.0)) * losses[i] for i, name in enumerate(self.objectives)])
        # One pass over the gradients: an inf or NaN anywhere makes the global norm non-finite (and so does
        # a norm beyond fp32's range, ~1.8e19, which clipping could only turn into NaN weights). Identical
        # on every rank: the decision is taken on the allreduced gradient.
        norm = tf.linalg.global_norm(grads)
        finite = tf.math.is_finite(norm)
        norm = tf.cond(finite, lambda: self._clip_and_apply_body(grads, norm), lambda: tf.constant(float("nan")))
        if self.loss_scale is not None:
            self.loss_scale.update(finite)
        metrics = {name: loss_sums[n + i] for i, name in enumerate(self.metric_names)}
        by_name = {name: counts[i] for i, name in enumerate(self.objectives)}
        self.window.add(finite, loss, losses, step_accuracies(metrics, by_name, self.window.accuracies),
                        global_counts[-2], norm, global_counts[-1])
        self._last.assign(tf.concat([tf.stack([loss, 1.0 - tf.cast(finite, tf.float32), norm, global_counts[-2],
                                               global_counts[-1]] + losses), counts, loss_sums[n:]], axis=0))

    def _begin(self, micro_batches, stop, last=True):
        """The counts allreduce and the micro-batches' accumulation (`last=False`: all but the last)."""
        if len(micro_batches) != self.accum_steps:
            raise ValueError("expected %d micro-batches, got %d" % (self.accum_steps, len(micro_batches)))
        self.build()
        global_counts = self._counts(list(micro_batches), tf.constant(1.0 if stop else 0.0))
        scale = self._scale()
        for index, features in enumerate(micro_batches if last else micro_batches[:-1]):
            self._micro_step(features, global_counts[: len(self.objectives)], scale, self._micro_key(index))
        return global_counts, scale

    def _micro_key(self, index):
        # The rank is read at each step: an elastic job's rank may change.
        return tf.constant([index, self.comm.rank], tf.int32)

    # -- public ------------------------------------------------------------
    def run(self, micro_batches, stop=False):
        """One optimizer step, entirely on the device: nothing here waits for it to finish.

        A non-finite allreduced gradient (identical on every rank) skips the update; with fp16 the loss
        scale is then halved. The results go into `self.window`. stop: this rank asks every rank to stop
        (carried by the counts allreduce; seen in the window's next read).
        """
        global_counts, scale = self._begin(micro_batches, stop, last=False)
        last = self._single_micro_step if len(micro_batches) == 1 else self._last_micro_step
        last(micro_batches[-1], global_counts, scale, self._micro_key(len(micro_batches) - 1))

    def compute_gradients(self, micro_batches, stop=False):
        """Allreduced, not yet clipped gradients of the global mean loss (for inspection and tests).

        Returns (grads, info) where info holds the global per-objective losses,
        the total weighted loss, the global counts, non-padding tokens and whether
        any rank asked to stop (read to the host).
        """
        global_counts, _ = self._begin(micro_batches, stop)
        grads, loss_sums = self._reduce()
        n = len(self.objectives)
        values = to_host(tf.concat([global_counts, loss_sums], axis=0))
        counts, sums = values[: n + 2], values[n + 2:]
        losses = np.divide(sums[:n], counts[:n], out=np.zeros(n, np.float32), where=counts[:n] > 0)
        return grads, self._info(losses, counts[:n], sums[n:], counts[n], counts[n + 1])

    def apply(self, grads):
        """Clip after the allreduce, then one optimizer update; returns the pre-clip global norm."""
        return float(to_host(self._clip_and_apply(grads)))

    def step(self, micro_batches, stop=False):
        """`run`, then one read of this step's results: a dict with losses, loss, counts, accuracy,
        metrics, nonpad_tokens, stop, skipped, grad_norm (NaN when skipped) and, with fp16, loss_scale."""
        self.run(micro_batches, stop)
        scale = self.loss_scale.scale if self.loss_scale is not None else tf.constant(1.0)
        values = to_host(tf.concat([self._last.read_value(), tf.reshape(scale, [1])], axis=0))
        n = len(self.objectives)
        loss, skipped, norm, nonpad, stop_flag = (float(v) for v in values[:5])
        info = self._info(values[5:5 + n], values[5 + n:5 + 2 * n], values[5 + 2 * n:-1], nonpad, stop_flag)
        info.update(loss=loss, skipped=skipped > 0, grad_norm=norm)
        if self.loss_scale is not None:
            info["loss_scale"] = float(values[-1])
        return info

    def _info(self, losses, counts, metric_sums, nonpad, stop):
        losses = {name: float(losses[i]) for i, name in enumerate(self.objectives)}
        counts = {name: float(counts[i]) for i, name in enumerate(self.objectives)}
        metrics = {name: float(metric_sums[i]) for i, name in enumerate(self.metric_names)}
        return {
            "losses": losses,
            "loss": sum(self.weights.get(n, 1.0) * v for n, v in losses.items()),
            "counts": counts,
            "accuracy": accuracies(metrics, counts),
            "metrics": metrics,
            "nonpad_tokens": float(nonpad),
            "stop": bool(stop > 0),
        }


def accuracies(metric_sums, counts):
    """<objective>_correct / count per objective; for RTD also the all-original baseline accuracy."""
    out = {}
    for name, count in counts.items():
        if name + "_correct" in metric_sums and count > 0:
            out[name] = metric_sums[name + "_correct"] / count
    if "rtd_replaced" in metric_sums and counts.get("rtd", 0) > 0:
        out["rtd_all_original_baseline"] = 1.0 - metric_sums["rtd_replaced"] / counts["rtd"]
    return out
