"""LayerNorm over the last axis with a written-out gradient (models/ops.layer_norm)."""

from hvd_pretrain.models import ops
from hvd_pretrain.tfcompat import keras, tf


class LayerNorm(keras.layers.LayerNormalization):
    """keras.layers.LayerNormalization, same variables (`gamma`, `beta`), config and checkpoints.

    Over the last axis with both `gamma` and `beta`, in float32 compute (the layout every BERT, ALBERT
    and ELECTRA LayerNorm here uses), it runs ops.layer_norm, whose gradient is written out (fewer
    kernels than Keras' decomposed one); anything else (another axis, mixed precision) is Keras' own call.
    inputs [..., H] -> [..., H].
    """

    def call(self, inputs):
        rank = inputs.shape.rank
        if (rank is None or list(self.axis) != [rank - 1] or not (self.center and self.scale)
                or self.compute_dtype != "float32" or self.dtype != "float32"):
            return super().call(inputs)
        return ops.layer_norm(tf.cast(inputs, tf.float32), tf.convert_to_tensor(self.gamma),
                              tf.convert_to_tensor(self.beta), self.epsilon)
