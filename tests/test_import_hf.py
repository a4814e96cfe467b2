"""Import transformers directories made by transformers itself; parity <= 1e-4."""

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
COMMON = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def save_random(model, path):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "LayerNorm.weight" in name or "layer_norm.weight" in name
                    else 0.05 * torch.randn_like(p))
    model.eval().save_pretrained(path)
    return model


def batch():
    rng = np.random.RandomState(2)
    ids = rng.randint(5, V, [B, L]).astype(np.int32)
    mask = np.ones([B, L], np.int32)
    mask[0, 10:] = 0
    ids[mask == 0] = 0
    seg = np.zeros([B, L], np.int32)
    seg[:, 5:] = 1
    seg[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": seg,
            "masked_lm_positions": np.tile(np.arange(L, dtype=np.int32), [B, 1]),
            "masked_lm_ids": np.zeros([B, L], np.int32), "masked_lm_weights": np.ones([B, L], np.float32),
            "next_sentence_labels": np.zeros([B], np.int32)}


def run_hf(model, f):
    with torch.no_grad():
        return model(input_ids=torch.tensor(f["input_ids"], dtype=torch.long),
                     attention_mask=torch.tensor(f["input_mask"], dtype=torch.long),
                     token_type_ids=torch.tensor(f["segment_ids"], dtype=torch.long))


def close(ours, theirs, mask=None):
    ours, theirs = np.asarray(ours), theirs.detach().numpy()
    assert ours.shape == theirs.shape
    if mask is not None:
        ours, theirs = ours[mask], theirs[mask]
    err = float(np.abs(ours - theirs).max())
    assert err <= TOL, err
    return err


def imported(source, generator_source=None):
    from hvd_pretrain.export import config_from_pretrained, load_pretrained
    config = config_from_pretrained(source, generator_source)
    model = build_pretrainer(config).build_for()
    report = load_pretrained(model, source, generator_source)
    return model, report


@pytest.mark.timeout(300)
def test_bert_for_pretraining_directory(tmp_path):
    hf = save_random(transformers.BertForPreTraining(transformers.BertConfig(**COMMON)), tmp_path / "bert")
    model, report = imported(str(tmp_path / "bert"))
    assert report["missing"] == [] and model.config.hidden_act == "gelu"
    f = batch()
    ours, theirs = model(f, training=False), run_hf(hf, f)
    mask = f["input_mask"].astype(bool)
    close(ours["mlm_logits"], theirs.prediction_logits, mask)
    close(ours["nsp_logits"], theirs.seq_relationship_logits)


@pytest.mark.timeout(300)
def test_bare_bert_model_imports_encoder_and_lists_missing_heads(tmp_path):
    hf = save_random(transformers.BertModel(transformers.BertConfig(**COMMON)), tmp_path / "bare")
    model, report = imported(str(tmp_path / "bare"))
    assert "cls.predictions.bias" in report["missing"]
    assert not any(k.startswith("bert.") for k in report["missing"])
    f = batch()
    close(model(f, training=False)["sequence_output"], run_hf(hf, f).last_hidden_state, f["input_mask"].astype(bool))


@pytest.mark.timeout(300)
def test_albert_for_pretraining_directory(tmp_path):
    config = transformers.AlbertConfig(**dict(COMMON, embedding_size=16, num_hidden_groups=1, hidden_act="gelu_new"))
    hf = save_random(transformers.AlbertForPreTraining(config), tmp_path / "albert")
    model, report = imported(str(tmp_path / "albert"))
    assert report["missing"] == [] and model.config.sharing == "all"
    f = batch()
    ours, theirs = model(f, training=False), run_hf(hf, f)
    close(ours["mlm_logits"], theirs.prediction_logits, f["input_mask"].astype(bool))
    close(ours["sop_logits"], theirs.sop_logits)


def _electra_models(tmp_path):
    """(discriminator, generator): transformers ELECTRA models saved in tmp_path/disc and tmp_path/gen."""
    disc_cfg = transformers.ElectraConfig(**dict(COMMON, embedding_size=16))
    gen_cfg = transformers.ElectraConfig(**dict(COMMON, embedding_size=16, hidden_size=16, num_attention_heads=1,
                                                intermediate_size=32))
    disc = save_random(transformers.ElectraForPreTraining(disc_cfg), tmp_path / "disc")
    gen = transformers.ElectraForMaskedLM(gen_cfg)
    save_random(gen, tmp_path / "gen")
    with torch.no_grad():  # ELECTRA shares the embeddings: give the generator the discriminator's
        gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    gen.save_pretrained(tmp_path / "gen")
    return disc, gen


def _electra_dirs(tmp_path):
    _electra_models(tmp_path)
    return str(tmp_path / "disc"), str(tmp_path / "gen")


@pytest.mark.timeout(300)
def test_electra_discriminator_and_generator_directories(tmp_path):
    disc, gen = _electra_models(tmp_path)
    model, report = imported(str(tmp_path / "disc"), str(tmp_path / "gen"))
    assert report["missing"] == []
    assert model.config.generator_hidden_size == 0.5 and model.generator.config.hidden_size == 16
    f = batch()
    mask = f["input_mask"].astype(bool)
    close(model.rtd_head(model.discriminator(f)["sequence_output"]), run_hf(disc, f).logits, mask)
    gen_logits = model.generator_head(model.generator(f)["sequence_output"],
                                      model.discriminator.embeddings.word_embeddings)
    close(gen_logits, run_hf(gen, f).logits, mask)


@pytest.mark.timeout(300)
def test_export_then_import_round_trips_exactly(tmp_path):
    from hvd_pretrain.export import export_hf
    config = dataclasses.replace(preset("albert-tiny", vocab_size=V), num_layers=2)
    model = build_pretrainer(config).build_for()
    for i, v in enumerate(model.trainable_variables):
        v.assign(v + 0.01 * (i + 1))
    export_hf(model, str(tmp_path / "out"))
    again, report = imported(str(tmp_path / "out"))
    assert report["missing"] == []
    for a, b in zip(model.trainable_variables, again.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.timeout(300)
def test_shape_mismatch_names_the_tensor(tmp_path):
    from hvd_pretrain.export import load_pretrained
    save_random(transformers.BertForPreTraining(transformers.BertConfig(**COMMON)), tmp_path / "bert")
    config = dataclasses.replace(preset("tiny", vocab_size=V + 10), hidden_size=32, num_heads=4,
                                 intermediate_size=64, max_position_embeddings=32)
    model = build_pretrainer(config).build_for()
    with pytest.raises(ConfigError, match=r"'bert\.embeddings\.word_embeddings\.weight' has shape \[150, 32\]"):
        load_pretrained(model, str(tmp_path / "bert"))


def test_unknown_source_is_refused(tmp_path):
    from hvd_pretrain.export import config_from_pretrained
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither a transformers directory"):
        config_from_pretrained(str(tmp_path / "empty"))
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "gpt" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="model_type='gpt2'"):
        config_from_pretrained(str(tmp_path / "gpt"))
    assert os.listdir(tmp_path / "gpt")  # nothing removed


def test_electra_without_generator_reports_every_generator_tensor_missing(tmp_path):
    from hvd_pretrain.export import config_from_pretrained, load_pretrained
    from hvd_pretrain.export.importers import describe_missing
    disc_dir, gen_dir = _electra_dirs(tmp_path)
    full = build_pretrainer(config_from_pretrained(disc_dir, gen_dir)).build_for()
    complete = load_pretrained(full, disc_dir, gen_dir)
    assert complete["missing"] == [] and set(complete["sources"]) == {"generator", "discriminator"}
    alone = build_pretrainer(config_from_pretrained(disc_dir)).build_for()
    report = load_pretrained(alone, disc_dir)
    assert report["sources"] == {"discriminator": disc_dir}
    assert report["missing"] and all(k.startswith("generator/") for k in report["missing"])
    # the embeddings the generator shares with the discriminator did come from the source
    assert not any(k.startswith("generator/electra.embeddings.") for k in report["missing"])
    assert any(k.startswith("generator/generator_predictions.") for k in report["missing"])
    assert describe_missing(report["missing"]).startswith("%d tensors (generator: %d;"
                                                          % (len(report["missing"]), len(report["missing"])))


def test_hvd_export_writes_an_unloaded_generator_only_when_asked(tmp_path, capsys):
    from hvd_pretrain.cli import export as cli
    disc_dir, _ = _electra_dirs(tmp_path)
    out = tmp_path / "out"
    capsys.readouterr()  # transformers' own output while saving the fixtures
    assert cli.run(["hvd-export", "--from_pretrained=" + disc_dir, "--out=" + str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--generator" in err and "--allow_missing" in err
    assert not out.exists()
    assert cli.run(["hvd-export", "--from_pretrained=" + disc_dir, "--out=" + str(out), "--allow_missing"]) == 0
    printed = capsys.readouterr().out
    assert "kept their initial values: " in printed and "(generator:" in printed
    assert (out / "generator").is_dir()
