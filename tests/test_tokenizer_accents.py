"""WordPiece lower-casing and accent stripping are separate settings; an accented lower-case vocab keeps accents."""

import json

import pytest

from hvd_pretrain.vocab.tokenizer import file_fingerprint, load_tokenizer, vocab_keeps_accents

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXT = ["Sie müsste gehen, aber er musste bleiben.", "El café está cerca y hacía frío.", "Über Äpfel."]


def _vocab(path, words):
    chars = sorted({c for w in words for c in w})
    path.write_text("\n".join(SPECIALS + words + chars + ["##" + c for c in chars]) + "\n", encoding="utf-8")
    return str(path)


ACCENTED = ["sie", "müsste", "musste", "gehen", ",", "aber", "er", "bleiben", ".", "el", "café", "está", "cerca",
            "y", "hacía", "frío", "über", "äpfel"]


def _pieces(tok, text):
    return [tok.id_to_piece(i) for i in tok.encode(text)]


def test_lower_case_vocab_with_accented_pieces_keeps_accents(tmp_path):
    tok = load_tokenizer(_vocab(tmp_path / "vocab.txt", ACCENTED))
    assert tok.do_lower_case and not tok.strip_accents
    assert _pieces(tok, "Müsste") == ["müsste"] and tok.encode("müsste") != tok.encode("musste")
    assert _pieces(tok, "ÜBER hacía") == ["über", "hacía"]
    assert all(tok.unk_id not in tok.encode(line) for line in TEXT)
    info = tok.describe()
    assert info["do_lower_case"] is True and info["strip_accents"] is False


def test_strip_accents_can_be_chosen_apart_from_lower_casing(tmp_path):
    path = _vocab(tmp_path / "vocab.txt", ACCENTED + ["Müsste"])
    stripped = load_tokenizer(path, do_lower_case=True, strip_accents=True)
    assert _pieces(stripped, "müsste") == ["musste"]
    cased = load_tokenizer(path)  # capitals in the vocab: cased, and accents kept as Google does
    assert not cased.do_lower_case and not cased.strip_accents
    assert _pieces(cased, "Müsste") == ["Müsste"]
    cased_stripped = load_tokenizer(path, strip_accents=True)
    assert not cased_stripped.do_lower_case and cased_stripped.strip_accents
    assert _pieces(cased_stripped, "Müsste") == ["M", "##u", "##s", "##s", "##t", "##e"]
    prints = {t.fingerprint for t in (stripped, cased, cased_stripped, load_tokenizer(path, do_lower_case=True))}
    assert len(prints) == 4  # every setting that changes tokenization changes the fingerprint


def test_vocab_without_capitals_or_accents_follows_googles_uncased_rule(tmp_path):
    from bert import tokenization  # bert-tensorflow, a test extra
    tokenization.FLAGS(["test"])
    words = ["sie", "musste", "gehen", ",", "aber", "er", "bleiben", ".", "el", "cafe", "esta", "cerca", "y",
             "hacia", "frio", "uber", "apfel"]
    path = _vocab(tmp_path / "vocab.txt", words)
    tok = load_tokenizer(path)
    assert tok.do_lower_case and tok.strip_accents
    assert tok.fingerprint == file_fingerprint(path, extra="lower=1")  # unchanged for Google's vocabs
    vocab = {tok.id_to_piece(i): i for i in range(tok.vocab_size)}
    basic, pieces = tokenization.BasicTokenizer(do_lower_case=True), tokenization.WordpieceTokenizer(vocab=vocab)
    for line in TEXT + ["Müsste ÄPFEL naïve", "er" + "e" * 150 + " " + "aber" * 60]:  # words of 152 and 240
        assert tok.encode(line) == [vocab.get(p, tok.unk_id) for w in basic.tokenize(line)
                                    for p in pieces.tokenize(w)], line
    assert _pieces(tok, "Müsste") == ["musste"]


@pytest.mark.parametrize("pieces, keeps", [
    (["cafe", "##e"], False), (["café"], True), (["##é"], True), (["ø", "ł", "đ"], False),  # no decomposition
    (["が"], True), (["ि", "क"], False), (["ं"], True), (["ั"], True),  # Mc is no accent; Mn is
    (["[unusedé]"], False),  # bracketed special pieces do not count
])
def test_what_counts_as_an_accented_piece(pieces, keeps):
    assert vocab_keeps_accents(pieces) is keeps


def test_cli_records_the_choice_for_create_and_training(tmp_path, capsys):
    from hvd_pretrain.cli import data_vocab
    from hvd_pretrain.data import DataConfig, create_pretraining_data

    text = tmp_path / "text.txt"
    text.write_text("\n".join(TEXT) + "\n\n" + "\n".join(TEXT[::-1]) + "\n", encoding="utf-8")
    vocab = _vocab(tmp_path / "words.txt", ACCENTED)
    base = ["hvd-data vocab", "--input_files=%s" % text, "--wordpiece_vocab=%s" % vocab, "--heldout_every=1"]
    assert data_vocab.main(base + ["--out=%s" % (tmp_path / "auto")]) == 0
    assert "accents are kept" in capsys.readouterr().err
    assert json.loads((tmp_path / "auto" / "tokenizer.json").read_text())["strip_accents"] is False
    report = json.loads((tmp_path / "auto" / "vocab_report.json").read_text())
    assert report["vocab"]["strip_accents"] is False and report["heldout"]["unknown_tokens"] == 0
    assert data_vocab.main(base + ["--out=%s" % (tmp_path / "strip"), "--strip_accents=true"]) == 0
    assert json.loads((tmp_path / "strip" / "tokenizer.json").read_text())["strip_accents"] is True
    kept, stripped = load_tokenizer(str(tmp_path / "auto")), load_tokenizer(str(tmp_path / "strip"))
    assert _pieces(kept, "müsste") == ["müsste"] and _pieces(stripped, "müsste") == ["musste"]
    config = DataConfig(max_seq_length=32, max_predictions_per_seq=4, dupe_factor=1, num_shards=1)
    manifests = [create_pretraining_data([str(text)], str(tmp_path / name), str(tmp_path / ("data_" + name)), config)
                 for name in ("auto", "strip")]
    assert [m["tokenizer"]["strip_accents"] for m in manifests] == [False, True]
    assert manifests[0]["tokenizer_fingerprint"] != manifests[1]["tokenizer_fingerprint"]


def test_wordpiece_settings_without_a_wordpiece_vocab_are_refused(tmp_path, capsys):
    from hvd_pretrain.cli import data_vocab

    text = tmp_path / "text.txt"
    text.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    code = data_vocab.main(["hvd-data vocab", "--input_files=%s" % text, "--out=%s" % (tmp_path / "v"),
                            "--strip_accents=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --strip_accents applies to a WordPiece vocab") and "\n" not in err
