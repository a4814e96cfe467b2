"""AdamW and LAMB, written to the papers' update equations.

For every variable w with gradient g at optimizer step t (1-based):

    m = b1 m + (1 - b1) g              v = b2 v + (1 - b2) g^2
    m_hat = m / (1 - b1^t)             v_hat = v / (1 - b2^t)       (bias_correction=False: m_hat = m, v_hat = v)
    u = m_hat / (sqrt(v_hat) + eps) + wd * w          (wd = 0 for excluded variables)

    AdamW (Loshchilov & Hutter):  w -= lr * u
    LAMB  (You et al., Alg. 2):   w -= lr * (||w|| / ||u||) * u     (trust ratio; 1 when a norm is 0
                                                                      or the variable is excluded)

This is torch.optim.AdamW's update (eps added to sqrt(v_hat), decay lr * wd * w on the weights before
the step), which tests/test_train_parity.py checks step for step against transformers. Without bias
correction it is the AdamWeightDecayOptimizer of Google's BERT (optimization.py) and ALBERT's
LAMBOptimizer; for a steady gradient its updates are (1 - b1^t) / sqrt(1 - b2^t) times Adam's (3x at
t = 1, 1.3x at t = 1000). Keras' Adam differs: it folds the bias correction into the learning rate,
which scales eps by sqrt(1 - b2^t).

AdamW runs as one op per variable, our `HvdFusedAdamW` kernel (hvd_pretrain/kernels): the decay, m, v and
the weights in one pass over their memory, with the bias correction folded into the step size and epsilon
and the trainer's clip factor applied to the gradient on the way (`apply_gradients(grad_scale=)`). Where
that kernel is not available (not built, a GPU variable, inside an XLA cluster), the same update runs as
TensorFlow's stock kernels: the decay w -= lr * wd * w (ResourceApplyGradientDescent on the old weights),
then ResourceApplyAdam for m, v and w; the two give equal results to the bit. The scalars (learning rate,
b^t, corrected epsilon) are computed once per optimizer step. LAMB needs the whole update before the
trust ratio: ResourceApplyAdam at step size 0 updates its m and v, the rest stays element-wise.

LayerNorm parameters and biases are excluded from weight decay and from the
trust ratio. Gradients arrive dense (the trainer accumulates dense fp32 gradients).
tensorflow-addons, which used to provide LAMB, is end-of-life.
"""

import re

from hvd_pretrain import kernels
from hvd_pretrain.tfcompat import in_xla_context, keras, tf

# Variables matching any of these (regex search on the variable name) get no weight decay and no trust ratio.
DEFAULT_EXCLUDE = ("layer_norm", "LayerNorm", "layernorm", "bias")


def clip_factor(norm, clip_norm):
    """tf.clip_by_global_norm's factor: clip_norm * min(1 / norm, 1 / clip_norm), a float32 scalar.

    norm: the gradients' global norm (float32 scalar); clip_norm: a positive float. Multiplying each
    gradient by it is what tf.clip_by_global_norm(grads, clip_norm, use_norm=norm) returns, to the bit,
    NaN included when the norm is not finite; AdamWeightDecay.apply_gradients(grad_scale=) applies it
    inside its update kernel.
    """
    clip = tf.constant(clip_norm, tf.float32)
    return clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)


def apply_clipped(optimizer, grads, variables, clip_norm, norm=None):
    """Clip `grads` (one per variable, dense or IndexedSlices) to global norm `clip_norm` and apply them.

    clip_norm: 0 applies them unclipped. norm: their global norm if already computed (float32 scalar),
    else it is computed here when clipping. Returns the norm (None when neither given nor needed).
    With AdamWeightDecay the clip factor goes into its update kernel (`apply_gradients(grad_scale=)`, no
    pass over the gradients of its own); any other Keras optimizer gets tf.clip_by_global_norm's
    gradients. Both update the weights alike, to the bit.
    """
    if clip_norm > 0 and norm is None:
        norm = tf.linalg.global_norm(grads)
    if clip_norm > 0 and isinstance(optimizer, AdamWeightDecay):
        optimizer.apply_gradients(zip(grads, variables), grad_scale=clip_factor(norm, clip_norm))
        return norm
    if clip_norm > 0:
        grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
    optimizer.apply_gradients(zip(grads, variables))
    return norm


class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay; `layerwise_adaptation=True` makes it LAMB."""

    def __init__(self, learning_rate=1e-3, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 layerwise_adaptation=False, exclude=DEFAULT_EXCLUDE, bias_correction=True, name=None, **kwargs):
        name = name or ("LAMB" if layerwise_adaptation else "AdamW")
        # Keras' own weight decay (w -= lr * weight_decay * w on every variable, even at 0: three ops per
        # variable and step) stays off; the decoupled decay below, with its exclusions, is the one applied.
        kwargs.pop("weight_decay", None)
        super().__init__(name=name, weight_decay=None, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.layerwise_adaptation = bool(layerwise_adaptation)
        self.bias_correction = bool(bias_correction)
        self.exclude = tuple(exclude)

    def excluded(self, variable):
        return any(re.search(pattern, variable.name) for pattern in self.exclude)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._m = [self.add_variable_from_reference(model_variable=v, variable_name="m") for v in var_list]
        self._v = [self.add_variable_from_reference(model_variable=v, variable_name="v") for v in var_list]

    def _step_scalars(self, dtype):
        """The update's scalars, shared by every variable of one optimizer step.

        AdamW folds the bias correction into the step size and epsilon, as the fused kernel
        (ResourceApplyAdam) expects: m_hat / (sqrt(v_hat) + eps) = c * m / (sqrt(v) + eps * sqrt(1 - b2^t))
        with c = sqrt(1 - b2^t) / (1 - b1^t).
        """
        lr = tf.cast(tf.convert_to_tensor(self.learning_rate), dtype)  # read once, not once per variable
        scalars = {"lr": lr, "b1": tf.constant(self.beta_1, dtype), "b2": tf.constant(self.beta_2, dtype),
                   "eps": tf.constant(self.epsilon, dtype), "decay": lr * self.weight_decay_rate,
                   "b1_power": tf.constant(0.0, dtype), "b2_power": tf.constant(0.0, dtype)}
        if self.bias_correction:
            t = tf.cast(self.iterations + 1, dtype)
            scalars["b1_power"] = tf.pow(scalars["b1"], t)
            scalars["b2_power"] = tf.pow(scalars["b2"], t)
            scalars["eps_hat"] = scalars["eps"] * tf.sqrt(1.0 - scalars["b2_power"])
        else:
            scalars["eps_hat"] = scalars["eps"]
        # ResourceApplyAdam's own step size from lr and b^t, computed as it computes it.
        scalars["alpha"] = lr * tf.sqrt(1.0 - scalars["b2_power"]) / (1.0 - scalars["b1_power"])
        scalars["zero"], scalars["one"] = tf.constant(0.0, dtype), tf.constant(1.0, dtype)
        return scalars

    def apply_gradients(self, grads_and_vars, name=None, skip_gradients_aggregation=False, grad_scale=None,
                        **kwargs):
        """Keras' apply_gradients, plus grad_scale: an optional float32 scalar tensor that multiplies every
        gradient before the update, as `g * grad_scale` (the trainer's clip factor, so that
        clipping by global norm costs no pass over the gradients of its own)."""
        self._grad_scale = grad_scale
        try:
            return super().apply_gradients(grads_and_vars, name=name,
                                           skip_gradients_aggregation=skip_gradients_aggregation, **kwargs)
        finally:
            self._grad_scale = None

    def _internal_apply_gradients(self, grads_and_vars):
        # One set of scalars per optimizer step instead of one per variable.
        self._scalars = self._step_scalars(tf.float32)
        try:
            return super()._internal_apply_gradients(grads_and_vars)
        finally:
            self._scalars = None

    def _fused_kernel(self, variable):
        """Our HvdFusedAdamW op for this float32 CPU variable outside XLA, else None (stock ops)."""
        if self.layerwise_adaptation or variable.dtype != tf.float32 or in_xla_context():
            return None
        if tf.DeviceSpec.from_string(variable.device or "").device_type != "CPU":
            return None
        return kernels.fused_adamw()

    def update_step(self, gradient, variable):
        scalars = getattr(self, "_scalars", None)
        if scalars is None or scalars["lr"].dtype != variable.dtype:
            scalars = self._step_scalars(variable.dtype)
        gradient = tf.cast(tf.convert_to_tensor(gradient), variable.dtype)
        grad_scale = getattr(self, "_grad_scale", None)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._m[index], self._v[index]
        excluded = self.excluded(variable)
        fused = self._fused_kernel(variable)
        if fused is not None:
            # w - lr * wd * w - lr * m_hat / (sqrt(v_hat) + eps) in one op; its step size is what
            # ResourceApplyAdam computes from lr and b^t, in the same order.
            decay = scalars["decay"] if self.weight_decay_rate and not excluded else scalars["zero"]
            fused(var=variable.handle, m=m.handle, v=v.handle, grad=gradient,
                  grad_scale=scalars["one"] if grad_scale is None else grad_scale, decay=decay,
                  lr=scalars["alpha"], beta1=scalars["b1"], beta2=scalars["b2"], epsilon=scalars["eps_hat"])
            return
        if grad_scale is not None:
            gradient = gradient * grad_scale
        if not self.layerwise_adaptation:
            # AdamW: decay with the old weights, then one fused Adam kernel for m, v and the weights:
            # w - lr * wd * w - lr * m_hat / (sqrt(v_hat) + eps), the update above.
            if self.weight_decay_rate and not excluded:
                tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=scalars["decay"],
                                                        delta=variable.read_value())
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle, beta1_power=scalars["b1_power"],
                beta2_power=scalars["b2_power"], lr=scalars["lr"], beta1=scalars["b1"], beta2=scalars["b2"],
                epsilon=scalars["eps_hat"], grad=gradient)
            return
        # LAMB: the same kernel at step size 0 updates m and v in one op (w -= 0 leaves w as it is); the
        # trust ratio then needs the whole update, which stays element-wise.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle, beta1_power=scalars["b1_power"],
            beta2_power=scalars["b2_power"], lr=tf.zeros_like(scalars["lr"]), beta1=scalars["b1"],
            beta2=scalars["b2"], epsilon=scalars["eps_hat"], grad=gradient)
        m, v = m.read_value(), v.read_value()
        if self.bias_correction:
            m_hat = m / (1.0 - scalars["b1_power"])
            v_hat = v / (1.0 - scalars["b2_power"])
        else:
            m_hat, v_hat = m, v
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if self.weight_decay_rate and not excluded:
            update += self.weight_decay_rate * variable
        if not excluded:
            w_norm = tf.norm(variable)
            u_norm = tf.norm(update)
            trust = tf.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, tf.ones_like(w_norm))
            update *= trust
        variable.assign_sub(scalars["lr"] * update)

    def get_config(self):
        config = super().get_config()
        config.update(learning_rate=self._serialize_hyperparameter(self._learning_rate),
                      weight_decay_rate=self.weight_decay_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                      epsilon=self.epsilon, layerwise_adaptation=self.layerwise_adaptation,
                      bias_correction=self.bias_correction,
                      exclude=list(self.exclude))
        return config
