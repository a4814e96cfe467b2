"""ELECTRA: data flow, Gumbel-max sampling, stop-gradient, shared embeddings, loss weights."""

import dataclasses

import numpy as np
import pytest

from hvd_pretrain.models import build_pretrainer, count_parameters, ops, preset
from hvd_pretrain.models import electra
from hvd_pretrain.models.family import generator_config
from hvd_pretrain.tfcompat import tf

B, L, P, V = 2, 10, 3, 200


def tiny(**overrides):
    values = dict(vocab_size=V, hidden_dropout=0.0, attention_dropout=0.0)
    values.update(overrides)
    return preset("electra-tiny", **values)


def features():
    rng = np.random.RandomState(11)
    ids = rng.randint(5, V, [B, L]).astype(np.int32)
    mask = np.ones([B, L], np.int32)
    mask[1, 8:] = 0
    ids[mask == 0] = 0
    positions = np.array([[1, 4, 6], [2, 5, 0]], np.int32)
    weights = np.array([[1, 1, 1], [1, 1, 0]], np.float32)  # last slot of example 1 is padding
    original = rng.randint(5, V, [B, P]).astype(np.int32)
    ids[0, positions[0]] = 3  # [MASK]
    ids[1, positions[1, :2]] = 3
    return {
        "input_ids": tf.constant(ids), "input_mask": tf.constant(mask),
        "segment_ids": tf.zeros([B, L], tf.int32), "masked_lm_positions": tf.constant(positions),
        "masked_lm_ids": tf.constant(original), "masked_lm_weights": tf.constant(weights),
        "next_sentence_labels": tf.zeros([B, 1], tf.int32),
    }


@pytest.fixture(scope="module")
def model():
    return build_pretrainer(tiny()).build_for(B, L, P)


def test_scatter_leaves_padding_slots_alone():
    ids = tf.constant([[10, 11, 12, 13]])
    got = ops.scatter_positions(ids, tf.constant([[2, 0]]), tf.constant([[99, 98]]), tf.constant([[1.0, 0.0]]))
    np.testing.assert_array_equal(got.numpy(), [[10, 11, 99, 13]])


def test_sample_equal_to_original_is_labelled_original():
    f = features()
    original = electra.original_ids(f)
    sampled = f["masked_lm_ids"].numpy().copy()
    sampled[0, 1] = (sampled[0, 1] + 1) % V  # only this one differs from the original
    corrupted = electra.corrupt_ids(f, tf.constant(sampled))
    labels = electra.replaced_labels(original, corrupted, f["input_mask"]).numpy()
    expected = np.zeros([B, L], np.float32)
    expected[0, 4] = 1.0
    np.testing.assert_array_equal(labels, expected)
    # The original sequence holds the true tokens at every active masked position.
    orig = original.numpy()
    assert orig[0, 1] == f["masked_lm_ids"].numpy()[0, 0] and orig[1, 5] == f["masked_lm_ids"].numpy()[1, 1]
    assert orig[1, 0] == f["input_ids"].numpy()[1, 0]  # padding slot at position 0 untouched


def test_model_labels_follow_generator_samples():
    model = build_pretrainer(tiny()).build_for(B, L, P)
    bias = np.zeros([V], np.float32)
    bias[42] = 1e4  # the generator now always samples token 42
    model.generator_head.output_bias.assign(bias)
    f = features()
    ids = f["masked_lm_ids"].numpy().copy()
    ids[ids == 42] = 43
    ids[0, 0] = 42  # this sample will equal the original
    f["masked_lm_ids"] = tf.constant(ids)
    out = model(f, training=False)
    assert np.all(out["sampled_ids"].numpy() == 42)
    labels = out["rtd_labels"].numpy()
    replaced = {(0, 4), (0, 6), (1, 2), (1, 5)}
    assert {tuple(i) for i in np.argwhere(labels == 1)} == replaced
    sums = model.loss_sums(f, training=False)
    assert sums["rtd_replaced"].numpy() == 4
    logits = out["rtd_logits"].numpy()
    mask = f["input_mask"].numpy()
    bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(sums["rtd"].numpy(), (bce * mask).sum(), rtol=1e-5)
    assert sums["rtd_correct"].numpy() == (((logits > 0) == labels) * mask).sum()


def test_gumbel_max_samples_the_softmax():
    probs = np.array([0.2, 0.5, 0.3], np.float32)
    logits = tf.constant(np.log(np.tile(probs, [40000, 1])))
    samples = ops.gumbel_argmax(logits, seed=tf.constant([1, 2])).numpy()
    freq = np.bincount(samples, minlength=3) / len(samples)
    np.testing.assert_allclose(freq, probs, atol=0.01)
    # Stateless: the same seed gives the same samples, another seed others.
    np.testing.assert_array_equal(ops.gumbel_argmax(logits, seed=tf.constant([1, 2])).numpy(), samples)
    assert np.mean(ops.gumbel_argmax(logits, seed=tf.constant([1, 3])).numpy() != samples) > 0.3


def test_sampling_is_under_stop_gradient(model):
    f = features()
    generator_only = model.generator_head.trainable_variables + [
        v for v in model.generator.trainable_variables
        if all(v is not e for e in model.discriminator.embeddings.trainable_variables)]
    discriminator_only = model.rtd_head.trainable_variables + [
        v for v in model.discriminator.trainable_variables
        if all(v is not e for e in model.discriminator.embeddings.trainable_variables)]
    with tf.GradientTape(persistent=True) as tape:
        sums = model.loss_sums(f, training=True)
    assert all(g is None for g in tape.gradient(sums["rtd"], generator_only))
    assert all(g is None for g in tape.gradient(sums["mlm"], discriminator_only))
    assert all(g is not None for g in tape.gradient(sums["mlm"], generator_only))
    assert all(g is not None for g in tape.gradient(sums["rtd"], discriminator_only))
    word = model.discriminator.embeddings.word_embeddings
    assert tape.gradient(sums["mlm"], word) is not None and tape.gradient(sums["rtd"], word) is not None


def test_embeddings_are_shared(model):
    assert model.generator.embeddings is model.discriminator.embeddings
    tables = {id(v) for v in model.trainable_variables if "embeddings" in v.name and "word" in v.name}
    assert len(tables) == 1


def test_objectives_weights_and_counts(model):
    assert model.objectives == ("mlm", "rtd")
    assert model.loss_weights == {"mlm": 1.0, "rtd": 50.0}
    counts = model.target_counts(features())
    assert counts["mlm"].numpy() == 5 and counts["rtd"].numpy() == 18
    assert model.encoder is model.discriminator
    heavier = build_pretrainer(tiny(disc_weight=20.0))
    assert heavier.loss_weights["rtd"] == 20.0


def test_generator_size_is_a_configurable_fraction():
    base = generator_config(preset("electra-base"))
    assert (base.hidden_size, base.num_heads, base.intermediate_size) == (192, 3, 768)
    half = build_pretrainer(tiny(generator_hidden_size=0.5)).build_for(B, L, P)
    assert half.generator.config.hidden_size == 64
    assert half.generator.blocks[0].feed_forward.intermediate.units == 256
    assert half.discriminator.config.hidden_size == 128


def test_electra_on_albert_style_encoder():
    config = tiny(embedding_size=32, sharing="all")
    model = build_pretrainer(config).build_for(B, L, P)
    assert len({id(b.attention) for b in model.discriminator.blocks}) == 1
    assert len({id(b.attention) for b in model.generator.blocks}) == 1
    assert model.discriminator.embedding_projection is not None
    sums = model.loss_sums(features(), training=True)
    assert all(np.isfinite(v.numpy()) for v in sums.values())
    unshared = dataclasses.replace(config, sharing="none", embedding_size=None)
    assert count_parameters(config) < count_parameters(unshared)


def test_discriminator_is_easy_to_keep(model, tmp_path):
    from hvd_pretrain.models import TransformerEncoder
    path = str(tmp_path / "discriminator.weights.h5")
    model.discriminator.save_weights(path)
    kept = TransformerEncoder(model.config, with_pooler=False)
    f = features()
    kept(f)
    kept.load_weights(path)
    np.testing.assert_array_equal(kept(f)["sequence_output"].numpy(),
                                  model.discriminator(f)["sequence_output"].numpy())
    assert not any("generator" in v.name for v in model.discriminator.trainable_variables)
