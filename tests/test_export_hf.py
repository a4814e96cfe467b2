"""hvd-export: our models loaded by transformers (PyTorch) give the same logits (<= 1e-4)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from hvd_pretrain.models import ConfigError, build_pretrainer, preset

torch = pytest.importorskip("torch", reason="pip install torch==2.13.0 transformers (test extra)")
transformers = pytest.importorskip("transformers")

B, L, V = 2, 12, 150
TOL = 1e-4


def randomize(model, seed=0):
    """Weights far from their initial values, so that a wrong mapping cannot hide."""
    rng = np.random.RandomState(seed)
    for v in model.trainable_variables:
        if "gamma" in v.name:
            v.assign(1.0 + 0.1 * rng.randn(*v.shape))
        else:
            v.assign(0.05 * rng.randn(*v.shape))


def batch():
    rng = np.random.RandomState(1)
    ids = rng.randint(5, V, [B, L]).astype(np.int32)
    mask = np.ones([B, L], np.int32)
    mask[1, 9:] = 0
    ids[mask == 0] = 0
    segments = np.zeros([B, L], np.int32)
    segments[:, 6:] = 1
    segments[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
            "masked_lm_positions": np.tile(np.arange(L, dtype=np.int32), [B, 1]),
            "masked_lm_ids": np.zeros([B, L], np.int32), "masked_lm_weights": np.ones([B, L], np.float32),
            "next_sentence_labels": np.zeros([B, 1], np.int32)}


def built(config, seed=0):
    model = build_pretrainer(config).build_for(B, L, 3)
    randomize(model, seed)
    return model


def hf_outputs(path, architecture, f):
    cls = getattr(transformers, architecture)
    hf = cls.from_pretrained(path).eval()
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(f["input_ids"], dtype=torch.long),
                 attention_mask=torch.tensor(f["input_mask"], dtype=torch.long),
                 token_type_ids=torch.tensor(f["segment_ids"], dtype=torch.long))
    return out


def real(f):
    """Compare only real tokens: padded rows are undefined in both implementations."""
    return f["input_mask"].astype(bool)


def assert_close(ours, theirs, mask=None):
    ours, theirs = np.asarray(ours), theirs.detach().numpy()
    assert ours.shape == theirs.shape
    if mask is not None:
        ours, theirs = ours[mask], theirs[mask]
    err = float(np.abs(ours - theirs).max())
    assert err <= TOL, "max abs logit difference %.3g > %g" % (err, TOL)
    return err


def export(model, tmp_path, name="out"):
    from hvd_pretrain.export import export_hf
    return export_hf(model, str(tmp_path / name))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("objective,architecture", [("nsp", "BertForPreTraining"), ("none", "BertForMaskedLM")])
def test_bert_export_parity(tmp_path, objective, architecture):
    model = built(preset("tiny", vocab_size=V, sentence_objective=objective))
    path = export(model, tmp_path)["model"]
    assert json.load(open(os.path.join(path, "config.json")))["architectures"] == [architecture]
    f = batch()
    ours = model(f, training=False)
    mlm = model.mlm_head(ours["sequence_output"], model.encoder.embeddings.word_embeddings)
    theirs = hf_outputs(path, architecture, f)
    if objective == "nsp":
        assert_close(mlm, theirs.prediction_logits, real(f))
        assert_close(ours["nsp_logits"], theirs.seq_relationship_logits)
    else:
        assert_close(mlm, theirs.logits, real(f))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sharing", ["all", "none"])
def test_albert_export_parity(tmp_path, sharing):
    config = dataclasses.replace(preset("albert-tiny", vocab_size=V, sharing=sharing), num_layers=3)
    model = built(config)
    path = export(model, tmp_path)["model"]
    f = batch()
    ours = model(f, training=False)
    mlm = model.mlm_head(ours["sequence_output"], model.encoder.embeddings.word_embeddings)
    theirs = hf_outputs(path, "AlbertForPreTraining", f)
    assert_close(mlm, theirs.prediction_logits, real(f))
    assert_close(ours["sop_logits"], theirs.sop_logits)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("embedding_size", [None, 64])
def test_electra_export_parity(tmp_path, embedding_size):
    config = preset("electra-tiny", vocab_size=V)
    config = dataclasses.replace(config, embedding_size=embedding_size)
    model = built(config)
    paths = export(model, tmp_path)
    assert set(paths) == {"discriminator", "generator"}
    f = batch()
    disc = model.discriminator(f, training=False)["sequence_output"]
    theirs = hf_outputs(paths["discriminator"], "ElectraForPreTraining", f)
    assert_close(model.rtd_head(disc), theirs.logits, real(f))
    gen = model.generator(f, training=False)["sequence_output"]
    gen_logits = model.generator_head(gen, model.discriminator.embeddings.word_embeddings)
    theirs = hf_outputs(paths["generator"], "ElectraForMaskedLM", f)
    assert_close(gen_logits, theirs.logits, real(f))


@pytest.mark.parametrize("overrides,pattern", [
    ({"family": "albert", "sharing": "ffn"}, "model.sharing='ffn'"),
    ({"family": "albert", "sharing": "attention"}, "model.sharing='attention'"),
    ({"sharing": "all"}, "model.sharing='all'"),
    ({"embedding_size": 64}, "model.embedding_size=64"),
])
def test_unrepresentable_models_name_the_key(tmp_path, overrides, pattern):
    config = dataclasses.replace(preset("tiny", vocab_size=V), **overrides)
    model = build_pretrainer(config).build_for(1, 4, 1)
    with pytest.raises(ConfigError, match=pattern.replace(".", r"\.")):
        export(model, tmp_path)
    assert not os.path.exists(tmp_path / "out")


def test_existing_directory_needs_overwrite(tmp_path):
    from hvd_pretrain.export import ExportError, export_hf
    model = build_pretrainer(preset("tiny", vocab_size=V)).build_for(1, 4, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(ExportError, match="--overwrite"):
        export_hf(model, str(out))
    assert (out / "keep.txt").read_text() == "user data"
    export_hf(model, str(out), overwrite=True)
    assert (out / "config.json").exists() and not (out / "keep.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_overwrite_never_replaces_a_run_directory(tmp_path):
    from hvd_pretrain.export import ExportError, export_hf
    model = build_pretrainer(preset("tiny", vocab_size=V)).build_for(1, 4, 1)
    run = tmp_path / "run"
    (run / "checkpoints" / "ckpt-000000001").mkdir(parents=True)
    (run / "plan.json").write_text("{}")
    with pytest.raises(ExportError, match="refusing to replace it even with --overwrite"):
        export_hf(model, str(run), overwrite=True)
    assert (run / "checkpoints" / "ckpt-000000001").is_dir() and (run / "plan.json").exists()


def test_wordpiece_vocab_is_exported_and_loads(tmp_path):
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "the"]
    pieces += ["tok%d" % i for i in range(V - len(pieces))]
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(pieces) + "\n")
    from hvd_pretrain.export import export_hf
    model = build_pretrainer(preset("tiny", vocab_size=V)).build_for(1, 4, 1)
    path = export_hf(model, str(tmp_path / "out"), vocab_dir=str(vocab))["model"]
    tok = transformers.AutoTokenizer.from_pretrained(path)
    ids = tok("hello worlds")["input_ids"]
    assert ids == [2, 5, 6, 7, 3]
    # Literal special-token text is text, as it was in pre-training: never a [SEP] or [MASK] id.
    literal = tok("hello [SEP] the [MASK]")["input_ids"]
    assert literal[0] == 2 and literal[-1] == 3 and 3 not in literal[1:-1] and 4 not in literal
