"""The BERT pretrainer: shapes, loss sums and counts, gathers, tying, masking, errors."""

import numpy as np
import pytest

from hvd_pretrain.models import ConfigError, build_pretrainer, preset
from hvd_pretrain.models import ops
from hvd_pretrain.tfcompat import keras, tf

B, L, P, V = 3, 12, 4, 1000


def tiny(**overrides):
    values = dict(vocab_size=V, hidden_dropout=0.0, attention_dropout=0.0)
    values.update(overrides)
    return preset("tiny", **values)


def features(seed=0, batch=B, length=L, predictions=P, label_shape="column"):
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, V, size=[batch, length]).astype(np.int32)
    mask = np.ones([batch, length], np.int32)
    mask[1, length - 3:] = 0  # one padded example
    ids[mask == 0] = 0
    segments = np.zeros([batch, length], np.int32)
    segments[:, length // 2:] = 1
    segments[mask == 0] = 0
    positions = np.stack([rng.choice(np.arange(1, length - 3), predictions, replace=False)
                          for _ in range(batch)]).astype(np.int32)
    weights = np.ones([batch, predictions], np.float32)
    weights[2, predictions - 1] = 0.0  # a padding slot
    positions[2, predictions - 1] = 0
    labels = rng.randint(0, 2, size=[batch]).astype(np.int32)
    return {
        "input_ids": tf.constant(ids), "input_mask": tf.constant(mask), "segment_ids": tf.constant(segments),
        "masked_lm_positions": tf.constant(positions),
        "masked_lm_ids": tf.constant(rng.randint(5, V, size=[batch, predictions]).astype(np.int32)),
        "masked_lm_weights": tf.constant(weights),
        "next_sentence_labels": tf.constant(labels[:, None] if label_shape == "column" else labels),
    }


@pytest.fixture(scope="module")
def model():
    return build_pretrainer(tiny()).build_for(B, L, P)


def _ce(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, labels[..., None], -1)[..., 0]


def test_output_shapes_and_dtypes(model):
    out = model(features(), training=False)
    assert out["sequence_output"].shape == (B, L, 128)
    assert out["pooled_output"].shape == (B, 128)
    assert out["mlm_logits"].shape == (B, P, V)
    assert out["nsp_logits"].shape == (B, 2)
    assert out["mlm_logits"].dtype == tf.float32 and out["nsp_logits"].dtype == tf.float32
    assert model.objectives == ("mlm", "nsp")
    assert model.loss_weights == {"mlm": 1.0, "nsp": 1.0}


def test_loss_sums_are_sums_of_per_target_losses(model):
    f = features()
    out = model(f, training=False)
    sums = model.loss_sums(f, training=False)
    logits = out["mlm_logits"].numpy()
    weights = f["masked_lm_weights"].numpy()
    expected_mlm = (_ce(logits, f["masked_lm_ids"].numpy()) * weights).sum()
    nsp_labels = f["next_sentence_labels"].numpy().reshape(-1)
    expected_nsp = _ce(out["nsp_logits"].numpy(), nsp_labels).sum()
    np.testing.assert_allclose(sums["mlm"].numpy(), expected_mlm, rtol=1e-5)
    np.testing.assert_allclose(sums["nsp"].numpy(), expected_nsp, rtol=1e-5)
    correct = ((logits.argmax(-1) == f["masked_lm_ids"].numpy()) * weights).sum()
    assert sums["mlm_correct"].numpy() == correct
    assert sums["nsp_correct"].numpy() == (out["nsp_logits"].numpy().argmax(-1) == nsp_labels).sum()
    assert all(np.isfinite(v.numpy()) and v.dtype == tf.float32 for v in sums.values())


def test_target_counts_come_from_features(model):
    counts = model.target_counts(features())
    assert set(counts) == {"mlm", "nsp"}
    assert counts["mlm"].numpy() == B * P - 1  # one padding slot has weight 0
    assert counts["nsp"].numpy() == B
    assert counts["mlm"].dtype == tf.float32


def test_sentence_labels_accept_both_shapes(model):
    column = model.loss_sums(features(label_shape="column"))
    flat = model.loss_sums(features(label_shape="flat"))
    assert column["nsp"].numpy() == pytest.approx(flat["nsp"].numpy(), rel=1e-6)


def test_gather_positions():
    seq = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    pos = np.array([[4, 0], [2, 2]], np.int32)
    got = ops.gather_positions(tf.constant(seq), tf.constant(pos)).numpy()
    np.testing.assert_array_equal(got, np.stack([seq[0, [4, 0]], seq[1, [2, 2]]]))


def test_mlm_logits_use_tied_embeddings_at_masked_positions(model):
    f = features(seed=3)
    out = model(f, training=False)
    seq = out["sequence_output"].numpy()
    head = model.mlm_head
    rows = np.stack([seq[b, f["masked_lm_positions"].numpy()[b]] for b in range(B)])  # [B, P, H]
    hidden = head.transform(tf.constant(rows))
    hidden = head.layer_norm(tf.nn.gelu(hidden, approximate=False)).numpy()
    table = model.encoder.embeddings.word_embeddings.numpy()
    expected = hidden @ table.T + head.output_bias.numpy()
    np.testing.assert_allclose(out["mlm_logits"].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_padding_does_not_change_real_tokens(model):
    f = features(seed=4)
    changed = dict(f)
    ids = f["input_ids"].numpy().copy()
    ids[1, L - 3:] = 7  # different tokens under input_mask == 0
    changed["input_ids"] = tf.constant(ids)
    a = model(f, training=False)["sequence_output"].numpy()[1, :L - 3]
    b = model(changed, training=False)["sequence_output"].numpy()[1, :L - 3]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_loss_sums_in_tf_function_give_finite_gradients_for_every_variable(model):
    f = features(seed=5)

    @tf.function
    def step(feats):
        with tf.GradientTape() as tape:
            sums = model.loss_sums(feats, training=True)
            counts = model.target_counts(feats)
            total = tf.add_n([model.loss_weights[k] * sums[k] / counts[k] for k in model.objectives])
        return total, tape.gradient(total, model.trainable_variables)

    total, grads = step(f)
    assert np.isfinite(total.numpy())
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)


def test_dropout_follows_config_and_training_flag():
    model = build_pretrainer(tiny(hidden_dropout=0.1, attention_dropout=0.1)).build_for(B, L, P)
    f = features()
    eval_a = model(f, training=False)["sequence_output"].numpy()
    eval_b = model(f, training=False)["sequence_output"].numpy()
    train = model(f, training=True)["sequence_output"].numpy()
    np.testing.assert_array_equal(eval_a, eval_b)
    assert np.abs(train - eval_a).max() > 1e-3


def test_initial_kernels_are_distinct_truncated_normals():
    model = build_pretrainer(preset("mini", vocab_size=V)).build_for(1, 4, 1)
    attention = model.encoder.attention_sublayers[0].attention
    q, k = attention.query.kernel.numpy(), attention.key.kernel.numpy()
    assert not np.allclose(q, k)
    # A normal truncated at 2 sigma has std 0.8796 * sigma and no value beyond 2 sigma.
    assert abs(q.std() - 0.8796 * 0.02) < 0.1 * 0.02
    assert np.abs(q).max() <= 2 * 0.02 + 1e-7
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_policy_keeps_float32_variables_and_losses(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_pretrainer(tiny()).build_for(B, L, P)
        sums = model.loss_sums(features(), training=True)
        out = model(features(), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert out["sequence_output"].dtype != tf.float32
    assert out["mlm_logits"].dtype == tf.float32
    assert all(np.isfinite(v.numpy()) for v in sums.values())


def test_layer_configs_round_trip():
    from hvd_pretrain.models import layers
    made = [
        layers.Embeddings(50, 8, 16, 2, 0.02, 1e-12, 0.1),
        layers.MultiHeadSelfAttention(8, 2, 0.1, 0.02),
        layers.AttentionSublayer(8, 2, 0.1, 0.1, 0.02, 1e-12),
        layers.FeedForwardSublayer(8, 32, "gelu_new", 0.1, 0.02, 1e-12),
        layers.MaskedLMHead(50, 8, "gelu", 0.02, 1e-12),
        layers.SentenceHead(2, 0.02),
        layers.ReplacedTokenHead(8, "gelu", 0.02),
    ]
    made.append(layers.TransformerBlock(made[2], made[3]))
    for layer in made:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


def test_pretrainer_config_round_trips():
    from hvd_pretrain.models import ElectraPretrainer, Pretrainer
    for model in (build_pretrainer(tiny()), build_pretrainer(preset("electra-tiny", vocab_size=V))):
        again = type(model).from_config(model.get_config())
        assert isinstance(again, (Pretrainer, ElectraPretrainer)) and again.config == model.config


def test_sequence_longer_than_position_table_is_refused():
    model = build_pretrainer(tiny(max_position_embeddings=8)).build_for(1, 8, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_position_embeddings=8"):
        model(features(length=10), training=False)


def test_unknown_preset_names_the_key():
    with pytest.raises(ConfigError, match="'tiniest'"):
        preset("tiniest")


def test_hidden_not_divisible_by_heads_names_both_keys():
    with pytest.raises(ConfigError, match=r"hidden_size=128 .*num_heads=3"):
        preset("tiny", num_heads=3)


@pytest.mark.parametrize("key,value,pattern", [
    ("sharing", "some", "model.sharing='some'"),
    ("hidden_act", "swishy", "model.hidden_act='swishy'"),
    ("sentence_objective", "xyz", "model.sentence_objective='xyz'"),
    ("family", "gpt", "model.family='gpt'"),
])
def test_bad_config_values_name_the_key(key, value, pattern):
    import dataclasses
    config = dataclasses.replace(tiny(), **{key: value})
    with pytest.raises(ConfigError, match=pattern.replace("(", r"\(").replace(".", r"\.")):
        build_pretrainer(config)


def test_electra_refuses_a_sentence_objective():
    import dataclasses
    config = dataclasses.replace(preset("electra-tiny"), sentence_objective="nsp")
    with pytest.raises(ConfigError, match="model.sentence_objective='nsp'"):
        build_pretrainer(config)
