"""Bindings: one checkpoint key <-> one of our variables, with its layout change.

A binding list describes a whole model in some naming scheme (Hugging Face
state-dict keys, Google's TF1 checkpoint names). Export reads the variables
through it; import checks shapes and assigns through it. Both directions use
the same list, so they cannot drift apart.
"""

import collections

import numpy as np

from hvd_pretrain.models.config import ConfigError

# transpose: the stored tensor is the transpose of our variable (HF nn.Linear weights).
# constant: a value with no variable behind it (written on export, checked on import).
Binding = collections.namedtuple("Binding", "key variable transpose constant")


def bind(key, variable, transpose=False):
    return Binding(key, variable, transpose, None)


def bind_constant(key, value):
    return Binding(key, None, False, np.asarray(value, np.float32))


def dense(prefix, layer, transpose, weight="weight", bias="bias"):
    return [bind("%s%s" % (prefix, weight), layer.kernel, transpose), bind("%s%s" % (prefix, bias), layer.bias)]


def layer_norm(prefix, layer, gamma="weight", beta="bias"):
    return [bind(prefix + gamma, layer.gamma), bind(prefix + beta, layer.beta)]


def read(bindings):
    """key -> numpy array in the checkpoint's layout."""
    out = collections.OrderedDict()
    for b in bindings:
        value = b.constant if b.variable is None else b.variable.numpy()
        out[b.key] = np.ascontiguousarray(value.T if b.transpose else value).astype(np.float32)
    return out


def expected_shape(binding):
    shape = tuple(binding.constant.shape if binding.variable is None else binding.variable.shape)
    return shape[::-1] if binding.transpose else shape


def assign(bindings, tensors, source, required=None):
    """Assign tensors[key] to each binding's variable.

    Checks every shape first (nothing is assigned when one is wrong) and
    raises ConfigError naming the key, the two shapes and `source`. Keys
    missing from `tensors` are an error when `required(key)` is true and are
    returned (left at their current values) otherwise.
    """
    missing, todo = [], []
    for b in bindings:
        if b.key not in tensors:
            if required is None or required(b.key):
                raise ConfigError("%s has no tensor %r that the model config needs; it holds a different "
                                  "architecture (check model.family, model.sharing, model.num_layers)"
                                  % (source, b.key))
            missing.append(b.key)
            continue
        value = np.asarray(tensors[b.key])
        if tuple(value.shape) != expected_shape(b):
            raise ConfigError("%s: tensor %r has shape %s but the model config expects %s; "
                              "the checkpoint does not match the config (vocab_size, hidden_size, ...)"
                              % (source, b.key, list(value.shape), list(expected_shape(b))))
        todo.append((b, value))
    for b, value in todo:
        if b.variable is None:
            if not np.allclose(value, b.constant, atol=1e-6):
                raise ConfigError("%s: tensor %r is not the identity our model implies; this checkpoint cannot "
                                  "be represented (set model.embedding_size to differ from hidden_size)"
                                  % (source, b.key))
            continue
        b.variable.assign(value.T if b.transpose else value)
    return missing
