"""Building a sub-layer eagerly inside its parent's build(), under its own name scope."""

from hvd_pretrain.tfcompat import tf


def build_sublayer(layer, input_shape):
    """layer.build(input_shape) with variables named '<parent>/<layer>/<weight>'.

    Keras only opens a layer's name scope when the layer builds itself on its
    first call; building it from the parent's build() needs the scope here.
    """
    if not layer.built:
        with tf.name_scope(layer.name):
            layer.build(input_shape)
