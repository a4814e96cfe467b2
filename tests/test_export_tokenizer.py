"""The exported SentencePiece tokenizer.json tokenizes exactly like sentencepiece itself."""

import inspect
import json

import pytest

transformers = pytest.importorskip("transformers")

from hvd_pretrain.export.spm_tokenizer import read_spm  # noqa: E402


def corpus_lines():
    import argparse
    import collections
    import json as json_module
    import textwrap
    lines = []
    for module in (argparse, collections, json_module, textwrap, inspect):
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) or ""
            lines += [line.strip() for line in doc.splitlines() if len(line.strip()) > 20]
    return lines


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory):
    from hvd_pretrain.vocab.sentencepiece_trainer import train_sentencepiece
    root = tmp_path_factory.mktemp("spm")
    text = root / "corpus.txt"
    text.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    train_sentencepiece([str(text)], str(root / "vocab"), 400, num_threads=1)
    return str(root / "vocab")


def test_protobuf_reader_sees_what_sentencepiece_sees(spm_dir):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spm_dir + "/spm.model")
    model = read_spm(spm_dir + "/spm.model")
    assert len(model["pieces"]) == sp.get_piece_size() == 400
    for i, (piece, score, _) in enumerate(model["pieces"]):
        assert piece == sp.id_to_piece(i) and score == pytest.approx(sp.get_score(i), abs=1e-6)
    assert model["charsmap"] and model["add_dummy_prefix"]


@pytest.mark.timeout(240)
def test_exported_tokenizer_matches_sentencepiece(spm_dir, tmp_path):
    from hvd_pretrain.export import export_hf
    from hvd_pretrain.models import build_pretrainer, preset
    from hvd_pretrain.vocab.tokenizer import load_tokenizer
    ours = load_tokenizer(spm_dir)
    model = build_pretrainer(preset("albert-tiny", vocab_size=400)).build_for(1, 4, 1)
    path = export_hf(model, str(tmp_path / "out"), vocab_dir=spm_dir)["model"]
    assert json.load(open(path + "/tokenizer_config.json"))["tokenizer_class"] == "PreTrainedTokenizerFast"
    hf = transformers.AutoTokenizer.from_pretrained(path)
    texts = corpus_lines()[::7][:300] + [
        "  leading and   repeated   spaces  ", "ﬁne ｆｕｌｌｗｉｄｔｈ text, café №5", "tabs\tand\u00a0nbsp", "x"]
    mismatches = [t for t in texts if hf(t, add_special_tokens=False)["input_ids"] != ours.encode(t)]
    assert not mismatches, mismatches[:3]
    pair = hf("first part", "second part")
    assert pair["input_ids"][0] == ours.cls_id and pair["input_ids"].count(ours.sep_id) == 2
    assert pair["token_type_ids"][-1] == 1
    assert hf.mask_token_id == ours.mask_id and hf.pad_token_id == ours.pad_id
