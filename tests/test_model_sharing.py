"""Cross-layer sharing: a shared weight's gradient is the sum of every layer's contribution.

A shared model S and an unshared model U (sharing `none`) hold the same
values: each of U's layers is a copy of S's shared sub-layer. Then S and U
compute the same function, and the gradient of a shared weight in S equals
the sum over layers of the gradients of its copies in U.
"""

import dataclasses

import numpy as np
import pytest

from hvd_pretrain.models import build_pretrainer, preset
from hvd_pretrain.tfcompat import tf

B, L, P, V = 2, 10, 3, 120
LAYERS = 3


def config(sharing):
    return dataclasses.replace(
        preset("albert-tiny", vocab_size=V), hidden_size=32, num_heads=4, intermediate_size=48,
        embedding_size=16, num_layers=LAYERS, max_position_embeddings=16, sharing=sharing)


def features():
    rng = np.random.RandomState(7)
    return {
        "input_ids": tf.constant(rng.randint(1, V, [B, L]), tf.int32),
        "input_mask": tf.constant(np.ones([B, L]), tf.int32),
        "segment_ids": tf.constant(np.repeat([[0] * 5 + [1] * 5], B, 0), tf.int32),
        "masked_lm_positions": tf.constant([[1, 4, 7], [2, 3, 8]], tf.int32),
        "masked_lm_ids": tf.constant(rng.randint(1, V, [B, P]), tf.int32),
        "masked_lm_weights": tf.ones([B, P], tf.float32),
        "next_sentence_labels": tf.constant([[0], [1]], tf.int32),
    }


def total_loss(model, feats):
    sums = model.loss_sums(feats, training=False)
    counts = model.target_counts(feats)
    return tf.add_n([sums[k] / counts[k] for k in model.objectives])


def unshared_copy(shared):
    """A sharing-`none` model whose every layer is a copy of `shared`'s sub-layers."""
    feats = features()
    unshared = build_pretrainer(config("none")).build_for(B, L, P)
    s_enc, u_enc = shared.encoder, unshared.encoder
    for name in ("embeddings", "embedding_projection", "pooler"):
        getattr(u_enc, name).set_weights(getattr(s_enc, name).get_weights())
    unshared.mlm_head.set_weights(shared.mlm_head.get_weights())
    unshared.sentence_head.set_weights(shared.sentence_head.get_weights())
    for i in range(LAYERS):
        u_enc.blocks[i].attention.set_weights(s_enc.blocks[i].attention.get_weights())
        u_enc.blocks[i].feed_forward.set_weights(s_enc.blocks[i].feed_forward.get_weights())
    np.testing.assert_allclose(total_loss(shared, feats).numpy(), total_loss(unshared, feats).numpy(), rtol=1e-5)
    return unshared


@pytest.mark.parametrize("sharing,shared_parts", [
    ("all", ("attention", "feed_forward")), ("attention", ("attention",)), ("ffn", ("feed_forward",))])
def test_shared_gradient_is_sum_over_layers(sharing, shared_parts):
    feats = features()
    shared = build_pretrainer(config(sharing)).build_for(B, L, P)
    unshared = unshared_copy(shared)
    for part in shared_parts:
        s_layers = {id(getattr(b, part)) for b in shared.encoder.blocks}
        assert len(s_layers) == 1, "%s should be one object reused by every layer" % part
        s_vars = getattr(shared.encoder.blocks[0], part).trainable_variables
        u_vars = [getattr(unshared.encoder.blocks[i], part).trainable_variables for i in range(LAYERS)]
        with tf.GradientTape() as tape:
            s_loss = total_loss(shared, feats)
        s_grads = tape.gradient(s_loss, s_vars)
        with tf.GradientTape() as tape:
            u_loss = total_loss(unshared, feats)
        u_grads = tape.gradient(u_loss, [v for layer in u_vars for v in layer])
        n = len(s_vars)
        for j, s_grad in enumerate(s_grads):
            per_layer = [tf.convert_to_tensor(u_grads[i * n + j]).numpy() for i in range(LAYERS)]
            # Every layer contributes (no copy has a zero gradient), and they add up.
            assert all(np.abs(g).max() > 0 for g in per_layer)
            np.testing.assert_allclose(tf.convert_to_tensor(s_grad).numpy(), np.sum(per_layer, axis=0),
                                       rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("sharing,attention_objects,ffn_objects", [
    ("none", LAYERS, LAYERS), ("all", 1, 1), ("attention", 1, LAYERS), ("ffn", LAYERS, 1)])
def test_sharing_modes_reuse_sub_layer_objects(sharing, attention_objects, ffn_objects):
    model = build_pretrainer(config(sharing))
    blocks = model.encoder.blocks
    assert len(blocks) == LAYERS
    assert len({id(b.attention) for b in blocks}) == attention_objects
    assert len({id(b.feed_forward) for b in blocks}) == ffn_objects
