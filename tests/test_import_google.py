"""Import Google TF1 BERT / ALBERT checkpoints, made by Google's own modeling.py.

A child process builds the reference model (pip packages bert-tensorflow and
albert-tensorflow) under tensorflow.compat.v1, gives every variable random
values, saves a TF1 checkpoint and the reference outputs. Our encoder with
the imported weights must reproduce them within 1e-4. The TF1 code's only
dependency missing from TF 2 is tf.contrib.layers.layer_norm; the child
supplies it with the same variable names and epsilon.
"""

import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest

from hvd_pretrain.models import ConfigError, build_pretrainer
import proc

# The packages import tf.contrib at module level, so look for them without importing.
assert importlib.util.find_spec("bert") and importlib.util.find_spec("albert"), \
    "the test extras are missing: pip install -e .[test] (make test installs them)"

REFERENCE = r'''
import json, os, sys, types
import numpy as np
import tensorflow as real_tf
v1 = real_tf.compat.v1
v1.disable_v2_behavior()

def layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
    with v1.variable_scope(scope, "LayerNorm", [inputs]):
        shape = inputs.shape[-1:]
        beta = v1.get_variable("beta", shape, initializer=v1.zeros_initializer())
        gamma = v1.get_variable("gamma", shape, initializer=v1.ones_initializer())
        mean, var = v1.nn.moments(inputs, [-1], keepdims=True)
        return v1.nn.batch_normalization(inputs, mean, var, beta, gamma, 1e-12)

contrib = types.ModuleType("tensorflow.contrib")
contrib.layers = types.ModuleType("tensorflow.contrib.layers")
contrib.layers.layer_norm = layer_norm
sys.modules["tensorflow.contrib"] = contrib
sys.modules["tensorflow.contrib.layers"] = contrib.layers
family, out_dir = sys.argv[1], sys.argv[2]
config = json.loads(sys.argv[3])
if family == "albert":
    sys.modules["tensorflow"] = v1  # albert/modeling.py imports the TF1 API as `tensorflow`
    from albert import modeling
    cfg = modeling.AlbertConfig.from_dict(config)
    Model = modeling.AlbertModel
else:
    from bert import modeling
    cfg = modeling.BertConfig.from_dict(config)
    Model = modeling.BertModel

rng = np.random.RandomState(3)
B, L, P = 2, 12, 3
ids = rng.randint(5, config["vocab_size"], [B, L]).astype(np.int32)
mask = np.ones([B, L], np.int32); mask[1, 9:] = 0; ids[mask == 0] = 0
seg = np.zeros([B, L], np.int32); seg[:, 6:] = 1; seg[mask == 0] = 0
positions = np.array([[1, 3, 7], [2, 4, 8]], np.int32)
model = Model(config=cfg, is_training=False, input_ids=v1.constant(ids), input_mask=v1.constant(mask),
              token_type_ids=v1.constant(seg), use_one_hot_embeddings=False)
seq, pooled = model.get_sequence_output(), model.get_pooled_output()
width = config.get("embedding_size", config["hidden_size"])
with v1.variable_scope("cls/predictions"):
    rows = v1.gather(seq, positions, batch_dims=1)
    with v1.variable_scope("transform"):
        with v1.variable_scope("dense"):
            k = v1.get_variable("kernel", [config["hidden_size"], width])
            b = v1.get_variable("bias", [width])
        x = modeling.gelu(v1.einsum("bph,he->bpe", rows, k) + b)
        x = layer_norm(x)
    out_b = v1.get_variable("output_bias", [config["vocab_size"]])
    mlm = v1.einsum("bpe,ve->bpv", x, model.get_embedding_table()) + out_b
with v1.variable_scope("cls/seq_relationship"):
    w = v1.get_variable("output_weights", [2, config["hidden_size"]])
    sb = v1.get_variable("output_bias", [2])
    sentence = v1.matmul(pooled, w, transpose_b=True) + sb
with v1.Session() as sess:
    sess.run(v1.global_variables_initializer())
    for var in v1.global_variables():
        shape = var.shape.as_list()
        value = 1 + 0.1 * rng.randn(*shape) if "gamma" in var.name else 0.05 * rng.randn(*shape)
        var.load(value.astype(np.float32), sess)
    values = sess.run({"seq": seq, "pooled": pooled, "mlm": mlm, "sentence": sentence})
    v1.train.Saver().save(sess, os.path.join(out_dir, "bert_model.ckpt"))
    print("\n".join(sorted(v.name for v in v1.global_variables())))
np.savez(os.path.join(out_dir, "reference.npz"), ids=ids, mask=mask, seg=seg, positions=positions, **values)
with open(os.path.join(out_dir, family + "_config.json"), "w") as f:
    json.dump(config, f)
'''

BERT_CONFIG = {"vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
               "initializer_range": 0.02}


def make_reference(tmp_path, family, config):
    out = tmp_path / family
    out.mkdir(parents=True)
    result = proc.run([sys.executable, "-c", REFERENCE, family, str(out), json.dumps(config)], timeout=240)
    return str(out), np.load(out / "reference.npz"), result.stdout


def features(ref):
    B, P = ref["positions"].shape
    return {"input_ids": ref["ids"], "input_mask": ref["mask"], "segment_ids": ref["seg"],
            "masked_lm_positions": ref["positions"], "masked_lm_ids": np.zeros([B, P], np.int32),
            "masked_lm_weights": np.ones([B, P], np.float32), "next_sentence_labels": np.zeros([B], np.int32)}


def check_parity(source, ref, sentence_key):
    from hvd_pretrain.export import config_from_pretrained, load_pretrained
    config = config_from_pretrained(source)
    model = build_pretrainer(config).build_for()
    report = load_pretrained(model, source)
    assert report["missing"] == []
    out = model(features(ref), training=False)
    mask = ref["mask"].astype(bool)
    errors = {
        "sequence_output": np.abs(out["sequence_output"].numpy() - ref["seq"])[mask].max(),
        "pooled_output": np.abs(out["pooled_output"].numpy() - ref["pooled"]).max(),
        "mlm_logits": np.abs(out["mlm_logits"].numpy() - ref["mlm"]).max(),
        sentence_key: np.abs(out[sentence_key].numpy() - ref["sentence"]).max(),
    }
    print("parity (max abs error) for %s: %s" % (source, {k: "%.2e" % v for k, v in errors.items()}))
    assert all(e <= 1e-4 for e in errors.values()), errors
    return config, model


@pytest.fixture(scope="module")
def bert_reference(tmp_path_factory):
    return make_reference(tmp_path_factory.mktemp("google"), "bert", BERT_CONFIG)


@pytest.mark.timeout(300)
def test_google_bert_checkpoint_reproduces_reference(bert_reference):
    source, ref, _ = bert_reference
    config, _ = check_parity(source, ref, "nsp_logits")
    assert (config.family, config.hidden_act, config.sharing) == ("bert", "gelu_new", "none")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("groups", [1, 3])
def test_google_albert_checkpoint_reproduces_reference(tmp_path, groups):
    config = dict(BERT_CONFIG, embedding_size=16, num_hidden_layers=3, num_hidden_groups=groups,
                  inner_group_num=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    source, ref, names = make_reference(tmp_path, "albert", config)
    assert "bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/gamma:0" in names
    config, _ = check_parity(source, ref, "sop_logits")
    assert (config.family, config.sharing, config.embedding_size) == ("albert", "all" if groups == 1 else "none", 16)


@pytest.mark.timeout(300)
def test_google_checkpoint_with_wrong_shapes_names_the_tensor(bert_reference):
    import dataclasses
    from hvd_pretrain.export import config_from_pretrained, load_pretrained
    source = bert_reference[0]
    config = dataclasses.replace(config_from_pretrained(source), vocab_size=130)
    model = build_pretrainer(config).build_for()
    before = [v.numpy().copy() for v in model.trainable_variables]
    with pytest.raises(ConfigError, match=r"'bert/embeddings/word_embeddings' has shape \[120, 32\]"):
        load_pretrained(model, source)
    # Nothing was assigned: shapes are checked before any weight changes.
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


def chinese_vocab(directory, size=21128):
    """A vocab.txt laid out like Google's Chinese BERT/ELECTRA vocab (21,128 entries)."""
    pieces = ["[PAD]"] + ["[unused%d]" % i for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces += [chr(c) for c in range(0x4E00, 0x4E00 + size - len(pieces) - 200)]
    pieces += ["##" + chr(c) for c in range(0x4E00, 0x4E00 + 200)]
    assert len(pieces) == size
    path = directory / "vocab.txt"
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return str(path)


def test_google_chinese_wordpiece_vocab_is_found_and_checked(tmp_path):
    from hvd_pretrain.export import check_vocab, pretrained_vocab
    from hvd_pretrain.export.google_names import config_from_google
    from hvd_pretrain.models import ModelConfig
    from hvd_pretrain.vocab.tokenizer import load_tokenizer
    vocab = chinese_vocab(tmp_path)
    (tmp_path / "bert_config.json").write_text(json.dumps(dict(BERT_CONFIG, vocab_size=21128)))
    assert pretrained_vocab(str(tmp_path / "bert_model.ckpt")) == vocab
    config = ModelConfig.from_dict(config_from_google(dict(BERT_CONFIG, vocab_size=21128), "bert_config.json"))
    assert check_vocab(config, vocab) == 21128
    tokenizer = load_tokenizer(vocab)
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id, tokenizer.pad_id) == (101, 102, 103, 0)
    assert tokenizer.encode("\u4e00\u4e01") == [104, 105]  # one token per CJK character
    wrong = ModelConfig.from_dict(config_from_google(BERT_CONFIG, "bert_config.json"))
    with pytest.raises(ConfigError, match="model.vocab_size=120 does not match the 21128 entries"):
        check_vocab(wrong, vocab)


@pytest.mark.timeout(300)
def test_hvd_export_converts_a_google_checkpoint_to_transformers(bert_reference, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from hvd_pretrain.cli import export as cli
    source, ref, _ = bert_reference
    out = str(tmp_path / "hf")
    assert cli.run(["hvd-export", "--from_pretrained=" + source, "--out=" + out]) == 0
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    assert hf.config.hidden_act == "gelu_new"
    with torch.no_grad():
        got = hf(input_ids=torch.tensor(ref["ids"], dtype=torch.long),
                 attention_mask=torch.tensor(ref["mask"], dtype=torch.long),
                 token_type_ids=torch.tensor(ref["seg"], dtype=torch.long), output_hidden_states=True)
    mask = ref["mask"].astype(bool)
    assert np.abs(got.hidden_states[-1].numpy() - ref["seq"])[mask].max() <= 1e-4
    assert np.abs(got.seq_relationship_logits.numpy() - ref["sentence"]).max() <= 1e-4


def _numbered_copy(source, directory, real_step, broken_steps):
    """A TF1 directory with model.ckpt-<real_step> (the reference's files) and truncated model.ckpt-<broken_steps>."""
    import glob
    os.makedirs(directory)
    for path in glob.glob(os.path.join(source, "bert_model.ckpt.*")):
        suffix = os.path.basename(path)[len("bert_model.ckpt"):]
        shutil.copy(path, os.path.join(directory, "model.ckpt-%d%s" % (real_step, suffix)))
        with open(path, "rb") as f:
            data = f.read()
        for step in broken_steps:
            with open(os.path.join(directory, "model.ckpt-%d%s" % (step, suffix)), "wb") as f:
                f.write(data if suffix == ".index" else data[: len(data) // 3])
    shutil.copy(os.path.join(source, "bert_config.json"), directory)
    return str(directory)


@pytest.mark.timeout(300)
def test_highest_step_wins_numerically_and_is_named(bert_reference, tmp_path):
    # By name, model.ckpt-100000 sorts before model.ckpt-99999 and before model.ckpt-200000.
    from hvd_pretrain.export import load_pretrained
    source, ref, _ = bert_reference
    directory = _numbered_copy(source, tmp_path / "tf1", real_step=200000, broken_steps=(100000, 99999))
    _, model = check_parity(directory, ref, "nsp_logits")
    report = load_pretrained(model, directory)
    assert report["sources"] == {"model": os.path.join(directory, "model.ckpt-200000")}


@pytest.mark.timeout(300)
def test_checkpoint_state_file_is_honoured(bert_reference, tmp_path):
    from hvd_pretrain.export import load_pretrained
    source, ref, _ = bert_reference
    # Neither the first name (100000) nor the highest step (200000) is the one the state file names.
    directory = _numbered_copy(source, tmp_path / "tf1", real_step=150000, broken_steps=(100000, 200000))
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-150000"\n'
                'all_model_checkpoint_paths: "model.ckpt-100000"\nall_model_checkpoint_paths: "model.ckpt-150000"\n')
    _, model = check_parity(directory, ref, "nsp_logits")
    assert load_pretrained(model, directory)["sources"]["model"].endswith("model.ckpt-150000")


@pytest.mark.timeout(300)
def test_hvd_export_names_the_checkpoint_it_converted(bert_reference, tmp_path, capsys):
    from hvd_pretrain.cli import export as cli
    source, _, _ = bert_reference
    directory = _numbered_copy(source, tmp_path / "tf1", real_step=200000, broken_steps=(100000,))
    assert cli.run(["hvd-export", "--from_pretrained=" + directory, "--out=" + str(tmp_path / "hf")]) == 0
    assert "model.ckpt-200000 (" in capsys.readouterr().out
