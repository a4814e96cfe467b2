"""--recompute=block: every transformer block is computed again in backward, and the gradients are the
ones without recompute, dropout included (its masks are keyed by the forward pass's seed)."""

import numpy as np
import pytest

from hvd_pretrain.models.config import preset

SEQ, PREDS, VOCAB, BATCH = 16, 3, 100, 4


def features():
    import tensorflow as tf
    rng = np.random.RandomState(0)
    ids = rng.randint(5, VOCAB, size=(BATCH, SEQ)).astype(np.int32)
    mask = (np.arange(SEQ)[None, :] < np.array([16, 12, 9, 14])[:, None]).astype(np.int32)
    return dict(input_ids=tf.constant(ids * mask), input_mask=tf.constant(mask),
                segment_ids=tf.zeros((BATCH, SEQ), tf.int32),
                masked_lm_positions=tf.constant(np.tile(np.arange(1, PREDS + 1), (BATCH, 1)).astype(np.int32)),
                masked_lm_ids=tf.constant(ids[:, 1:PREDS + 1]), masked_lm_weights=tf.ones((BATCH, PREDS)),
                next_sentence_labels=tf.constant((np.arange(BATCH) % 2).astype(np.int32)))


def twins(name, dropout):
    """Two models with the same weights, without and with recompute."""
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.tfcompat import keras
    config = preset(name, vocab_size=VOCAB, max_position_embeddings=SEQ, hidden_dropout=dropout,
                    attention_dropout=dropout)
    keras.utils.set_random_seed(4)
    plain, recomputed = build_pretrainer(config), build_pretrainer(config, recompute="block")
    feats = features()
    plain.loss_sums(feats, training=False)
    recomputed.loss_sums(feats, training=False)
    recomputed.set_weights(plain.get_weights())
    return plain, recomputed, feats


def gradients(model, feats, seed):
    """Gradients of the summed losses, the forward pass's dropout seed being [seed, 0]."""
    import tensorflow as tf
    with tf.GradientTape() as tape:
        sums = model.loss_sums(feats, training=True, seed=tf.constant([seed, 0], tf.int32))
        loss = tf.add_n([sums[name] for name in model.objectives])
    return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_variables)]


def max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def count_block_calls(monkeypatch):
    from hvd_pretrain.models.layers.transformer import TransformerBlock
    calls = [0]
    original = TransformerBlock.call

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)
    monkeypatch.setattr(TransformerBlock, "call", counted)
    return calls


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,dropout", [("tiny", 0.0), ("tiny", 0.1), ("electra-tiny", 0.1)])
def test_recomputed_gradients_equal_stored_ones(name, dropout, monkeypatch):
    plain, recomputed, feats = twins(name, dropout)
    calls = count_block_calls(monkeypatch)
    expected = gradients(plain, feats, seed=11)
    plain_calls = calls[0]
    got = gradients(recomputed, feats, seed=11)
    assert calls[0] - plain_calls == 2 * plain_calls  # every block ran again in backward
    diff = max_diff(expected, got)
    print("MEASURED recompute %s dropout %.1f: max |grad diff| %.3g over %d tensors"
          % (name, dropout, diff, len(got)))
    assert diff <= 1e-6
    if dropout:
        # The masks are live: another seed gives other gradients (so equal seeds are what made them equal).
        assert max_diff(expected, gradients(plain, feats, seed=12)) > 1e-4


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_recompute_in_a_tf_function_with_a_fixed_seed():
    """The trainer's micro-step is a tf.function: recompute there gives the same gradients too."""
    import tensorflow as tf
    plain, recomputed, feats = twins("tiny", 0.1)
    def grads_fn(model):
        @tf.function
        def grads(seed):
            with tf.GradientTape() as tape:
                sums = model.loss_sums(feats, training=True, seed=seed)
                loss = sums["mlm"] + sums["nsp"]
            return tape.gradient(loss, model.trainable_variables)
        return [tf.convert_to_tensor(g).numpy() for g in grads(tf.constant([7, 9], tf.int32))]

    diff = max_diff(grads_fn(plain), grads_fn(recomputed))
    print("MEASURED recompute in tf.function, dropout 0.1: max |grad diff| %.3g" % diff)
    assert diff <= 1e-6


def test_recompute_flag_is_checked():
    from hvd_pretrain.errors import ConfigError
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.train.config import TrainConfig
    with pytest.raises(ConfigError, match="--recompute='layer'"):
        TrainConfig(recompute="layer").validate()
    with pytest.raises(ValueError, match="recompute='layer'"):
        build_pretrainer(preset("tiny", vocab_size=VOCAB), recompute="layer")
