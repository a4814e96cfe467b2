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

LayerNorm parameters and biases are excluded from weight decay and from the
trust ratio. Gradients arrive dense (the trainer accumulates dense fp32 gradients).
tensorflow-addons, which used to provide LAMB, is end-of-life.
"""

import re

from hvd_pretrain.tfcompat import keras, tf

# Variables matching any of these (regex search on the variable name) get no weight decay and no trust ratio.
DEFAULT_EXCLUDE = ("layer_norm", "LayerNorm", "layernorm", "bias")


class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay; `layerwise_adaptation=True` makes it LAMB."""

    def __init__(self, learning_rate=1e-3, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 layerwise_adaptation=False, exclude=DEFAULT_EXCLUDE, bias_correction=True, name=None, **kwargs):
        name = name or ("LAMB" if layerwise_adaptation else "AdamW")
        super().__init__(name=name, **kwargs)
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

    def update_step(self, gradient, variable):
        gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        t = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._m[index], self._v[index]
        m.assign(self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(gradient))
        if self.bias_correction:
            m_hat = m / (1.0 - tf.pow(tf.cast(self.beta_1, dtype), t))
            v_hat = v / (1.0 - tf.pow(tf.cast(self.beta_2, dtype), t))
        else:
            m_hat, v_hat = m, v
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        excluded = self.excluded(variable)
        if self.weight_decay_rate and not excluded:
            update += self.weight_decay_rate * variable
        if self.layerwise_adaptation and not excluded:
            w_norm = tf.norm(variable)
            u_norm = tf.norm(update)
            trust = tf.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, tf.ones_like(w_norm))
            update *= trust
        variable.assign_sub(lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(learning_rate=self._serialize_hyperparameter(self._learning_rate),
                      weight_decay_rate=self.weight_decay_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                      epsilon=self.epsilon, layerwise_adaptation=self.layerwise_adaptation,
                      bias_correction=self.bias_correction,
                      exclude=list(self.exclude))
        return config
