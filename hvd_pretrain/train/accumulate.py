"""Gradient accumulation and allreduce: the numerics of one optimizer step.

One optimizer step on every rank:

1. The rank takes its N micro-batches. From the features alone it counts the
   targets of each objective (masked tokens for MLM, examples for NSP/SOP,
   real tokens for RTD) and allreduces those counts (a few scalars) so that
   every rank knows the GLOBAL count of each objective for this step.
2. For each micro-batch it computes the loss SUMS and the gradient of
   ``sum_k w_k * sum_k / global_count_k``, and adds the gradient into fp32
   accumulators.
3. One grouped allreduce (op=Sum) of all accumulated gradients together with
   the loss sums. Because every term was already divided by the global
   count, the sum over ranks IS the gradient of the global mean loss: the
   mean over every masked token of the N x world micro-batches, exactly as
   one big batch on one device would compute it, even when micro-batches hold
   different numbers of masked tokens.
4. Clip by global norm (after the allreduce, so every rank clips the same
   gradient), then apply. The optimizer's iteration counter, which drives the
   learning-rate schedule, advances once per optimizer step.

The counts allreduce also carries the non-padding token count (for tokens/sec)
and a stop flag (so a signal seen by one rank stops every rank at the same step).

fp16: each micro-batch's loss is multiplied by a dynamic loss scale and its
gradients divided by it again before they are added to the fp32 accumulators.
A non-finite value on any rank makes the allreduced SUM non-finite on every
rank, so every rank takes the same decision: skip the update (the optimizer's
step counter does not move), halve the scale.
"""

from hvd_pretrain.tfcompat import tf


class LocalCommunicator:
    """World size 1: reductions are identities."""

    size = 1
    rank = 0

    def allreduce_sum(self, tensor):
        return tensor

    def grouped_allreduce_sum(self, tensors):
        return list(tensors)


class HorovodCommunicator:
    """Sum reductions over all Horovod ranks (one grouped call for many tensors).

    Size and rank are read from Horovod at each use, so the communicator stays right after an
    elastic job re-initialises Horovod in a new world.
    """

    def __init__(self, hvd, compression=None):
        self.hvd = hvd
        self.compression = compression or hvd.Compression.none

    @property
    def size(self):
        return self.hvd.size()

    @property
    def rank(self):
        return self.hvd.rank()

    def allreduce_sum(self, tensor):
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name="step_counts")

    def grouped_allreduce_sum(self, tensors):
        return self.hvd.grouped_allreduce(list(tensors), op=self.hvd.Sum, compression=self.compression)


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
        if finite:
            self.good_steps.assign_add(1)
            if int(self.good_steps.numpy()) >= self.growth_interval:
                self.scale.assign(self.scale * self.factor)
                self.good_steps.assign(0)
        else:
            self.scale.assign(tf.maximum(self.scale / self.factor, self.minimum))
            self.good_steps.assign(0)


class AccumulatingStep:
    """Runs optimizer steps of `accum_steps` micro-batches each, over `comm`.

    loss_scale: a DynamicLossScale for fp16, else None. jit_compile: XLA-compile the micro-step.
    """

    def __init__(self, model, optimizer, comm, accum_steps, clip_norm=1.0, loss_scale=None, jit_compile=False):
        if accum_steps < 1:
            raise ValueError("accum_steps must be >= 1, got %r" % accum_steps)
        self.model = model
        self.optimizer = optimizer
        self.comm = comm
        self.accum_steps = int(accum_steps)
        self.clip_norm = float(clip_norm)
        self.loss_scale = loss_scale
        self.objectives = tuple(model.objectives)
        self.weights = dict(model.loss_weights)
        self._accumulators = None
        self._loss_sums = None
        self.metric_names = ()  # extra sums the model reports (e.g. mlm_correct), found in build()
        self._micro_step = tf.function(self._micro_step_body, jit_compile=bool(jit_compile))

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
        """Create the fp32 accumulators (call after the model's variables exist).

        With `sample_features`, the model's extra metric sums (accuracy counts) are found and
        accumulated and reduced together with the losses.
        """
        if sample_features is not None and not self.metric_names:
            sums = self.model.loss_sums(sample_features, training=False)
            self.metric_names = tuple(sorted(k for k in sums if k not in self.objectives))
        if self._accumulators is None:
            self._accumulators = [
                tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name="accum/" + v.name.replace(":", "_"))
                for v in self.model.trainable_variables]
            self._loss_sums = tf.Variable(tf.zeros([len(self.objectives) + len(self.metric_names)], tf.float32),
                                          trainable=False, name="accum/loss_sums")
        return self

    def clear(self):
        """Zero the accumulators: a step interrupted between micro-batches and allreduce leaves sums behind."""
        for acc in self._accumulators or ():
            acc.assign(tf.zeros_like(acc))
        if self._loss_sums is not None:
            self._loss_sums.assign(tf.zeros_like(self._loss_sums))

    # -- the pieces --------------------------------------------------------
    def local_counts(self, micro_batches, stop=False):
        """[count per objective..., non-padding tokens, stop flag] for this rank's micro-batches."""
        totals = [0.0] * (len(self.objectives) + 2)
        for features in micro_batches:
            counts = self.model.target_counts(features)
            for i, name in enumerate(self.objectives):
                totals[i] += tf.cast(counts[name], tf.float32)
            totals[-2] += tf.cast(tf.reduce_sum(features["input_mask"]), tf.float32)
        totals[-1] = 1.0 if stop else 0.0
        return tf.stack([tf.cast(t, tf.float32) for t in totals])

    def _micro_step_body(self, features, global_counts, scale):
        with tf.GradientTape() as tape:
            sums = self.model.loss_sums(features, training=True)
            loss = weighted_loss(sums, global_counts, self.objectives, self.weights)
            scaled = loss * scale
        variables = self.model.trainable_variables
        grads = tape.gradient(scaled, variables)
        for acc, grad in zip(self._accumulators, grads):
            if grad is None:
                continue
            # Unscale each micro-batch's gradient before it joins the fp32 sum.
            acc.assign_add(tf.cast(tf.convert_to_tensor(grad), tf.float32) / scale)
        self._loss_sums.assign_add(tf.stack([tf.cast(sums[name], tf.float32)
                                             for name in self.objectives + self.metric_names]))

    @tf.function
    def _reduce(self):
        reduced = self.comm.grouped_allreduce_sum([a.read_value() for a in self._accumulators]
                                                  + [self._loss_sums.read_value()])
        for acc in self._accumulators:
            acc.assign(tf.zeros_like(acc))
        self._loss_sums.assign(tf.zeros_like(self._loss_sums))
        return reduced[:-1], reduced[-1]

    @tf.function
    def _clip_and_apply(self, grads):
        if self.clip_norm > 0:
            grads, norm = tf.clip_by_global_norm(grads, self.clip_norm)
        else:
            norm = tf.linalg.global_norm(grads)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return norm

    # -- public ------------------------------------------------------------
    def compute_gradients(self, micro_batches, stop=False):
        """Allreduced, not yet clipped gradients of the global mean loss.

        Returns (grads, info) where info holds the global per-objective losses,
        the total weighted loss, the global counts, non-padding tokens and whether
        any rank asked to stop.
        """
        if len(micro_batches) != self.accum_steps:
            raise ValueError("expected %d micro-batches, got %d" % (self.accum_steps, len(micro_batches)))
        self.build()
        global_counts = self.comm.allreduce_sum(self.local_counts(micro_batches, stop))
        objective_counts = global_counts[: len(self.objectives)]
        scale = self.loss_scale.scale.read_value() if self.loss_scale is not None else tf.constant(1.0)
        for features in micro_batches:
            self._micro_step(features, objective_counts, scale)
        grads, loss_sums = self._reduce()
        losses = {name: float(tf.math.divide_no_nan(loss_sums[i], objective_counts[i]))
                  for i, name in enumerate(self.objectives)}
        counts = {name: float(objective_counts[i]) for i, name in enumerate(self.objectives)}
        metrics = {name: float(loss_sums[len(self.objectives) + i]) for i, name in enumerate(self.metric_names)}
        info = {
            "losses": losses,
            "loss": sum(self.weights.get(n, 1.0) * v for n, v in losses.items()),
            "counts": counts,
            "accuracy": accuracies(metrics, counts),
            "metrics": metrics,
            "nonpad_tokens": float(global_counts[-2]),
            "stop": bool(global_counts[-1] > 0),
        }
        return grads, info

    def apply(self, grads):
        """Clip after the allreduce, then one optimizer update; returns the pre-clip global norm."""
        return float(self._clip_and_apply(grads))

    def step(self, micro_batches, stop=False):
        """One optimizer step. A non-finite gradient (identical on every rank after the
        allreduce) skips the update; with fp16 the loss scale is then halved."""
        grads, info = self.compute_gradients(micro_batches, stop)
        finite = bool(all_finite(grads))
        info["skipped"] = not finite
        if finite:
            info["grad_norm"] = self.apply(grads)
        else:
            info["grad_norm"] = float("nan")
        if self.loss_scale is not None:
            self.loss_scale.update(finite)
            info["loss_scale"] = float(self.loss_scale.scale.numpy())
        return info


def accuracies(metric_sums, counts):
    """<objective>_correct / count per objective; for RTD also the all-original baseline accuracy."""
    out = {}
    for name, count in counts.items():
        if name + "_correct" in metric_sums and count > 0:
            out[name] = metric_sums[name + "_correct"] / count
    if "rtd_replaced" in metric_sums and counts.get("rtd", 0) > 0:
        out["rtd_all_original_baseline"] = 1.0 - metric_sums["rtd_replaced"] / counts["rtd"]
    return out


@tf.function
def all_finite(tensors):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])
