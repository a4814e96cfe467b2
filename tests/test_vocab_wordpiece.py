"""WordPiece training (hvd-data vocab --model_type=wordpiece): layout, CJK, "##" pieces, round trip, bad input."""

import json
import os

import pytest

from hvd_pretrain.corpus import default_corpus
from hvd_pretrain.errors import DataError
from hvd_pretrain.vocab import load_tokenizer
from hvd_pretrain.vocab.wordpiece_trainer import special_pieces, train_wordpiece
import datatools

CHINESE = ["北京大学的学生在图书馆里读书。", "人民日报发表新年社论，迎接新的世纪。",
           "他说：学习语言模型需要大量的文本。", "这本书写得很好，值得一读。"] * 20
VOCAB_SIZE = 1500


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read(300_000)
    text = text[:text.rfind("\n\n") + 1]
    path = tmp_path_factory.mktemp("wp") / "corpus.txt"
    path.write_text(text + "\n" + "\n".join(CHINESE) + "\nThe literal [SEP] and [MASK] are text.\n",
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def vocab_dir(corpus, tmp_path_factory):
    from hvd_pretrain.cli import data_vocab

    out = tmp_path_factory.mktemp("wpv") / "vocab"
    code = data_vocab.main(["hvd-data vocab", "--input_files=" + corpus, "--out=%s" % out,
                            "--vocab_size=%d" % VOCAB_SIZE, "--model_type=wordpiece", "--wordpiece_unused=20",
                            "--heldout_every=50"])
    assert code == 0
    return str(out)


def _pieces(vocab_dir):
    with open(os.path.join(vocab_dir, "vocab.txt"), encoding="utf-8") as f:
        return f.read().splitlines()


def test_layout_special_ids_and_size(vocab_dir):
    pieces = _pieces(vocab_dir)
    assert VOCAB_SIZE - 50 <= len(pieces) <= VOCAB_SIZE
    assert pieces[:25] == special_pieces(20)
    assert len(set(pieces)) == len(pieces)
    tok = load_tokenizer(vocab_dir)
    assert tok.kind == "wordpiece" and tok.vocab_size == len(pieces)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert not set(tok.random_ids.tolist()) & set(range(25))  # neither specials nor [unused*] are drawn
    report = json.loads(open(os.path.join(vocab_dir, "vocab_report.json")).read())
    assert report["vocab"]["kind"] == "wordpiece" and report["training"]["model_type"] == "wordpiece"
    assert report["heldout"]["sentences"] > 10 and report["heldout"]["unknown_rate"] < 0.02
    assert json.loads(open(os.path.join(vocab_dir, "tokenizer.json")).read()) == {
        "kind": "wordpiece", "do_lower_case": True, "strip_accents": True}


def test_cjk_characters_are_one_token_each_and_continuations_exist(vocab_dir):
    pieces = _pieces(vocab_dir)
    cjk = [p for p in pieces if any("\u4e00" <= ch <= "\u9fff" for ch in p)]
    assert cjk and all(len(p) == 1 for p in cjk)  # no "##字" and no multi-character Chinese piece
    continuations = [p for p in pieces if p.startswith("##") and len(p) > 3]
    assert len(continuations) > 20
    tok = load_tokenizer(vocab_dir)
    ids = tok.encode("北京大学的学生")
    assert [tok.id_to_piece(i) for i in ids] == list("北京大学的学生")
    word = tok.encode("tokenization")
    assert len(word) >= 1 and all(tok.id_to_piece(i).startswith("##") for i in word[1:])
    assert [tok.is_word_start(i) for i in word] == [True] + [False] * (len(word) - 1)


def test_literal_special_symbols_in_text_stay_text(vocab_dir):
    tok = load_tokenizer(vocab_dir)
    ids = tok.encode("a [SEP] b [MASK] c [CLS] [PAD] [unused3]")
    assert not set(ids) & set(range(25))
    assert tok.id_to_piece(ids[1]) == "["


def test_case_and_accents_are_separate_options(corpus, tmp_path):
    cased = train_wordpiece([corpus], str(tmp_path / "cased"), 800, do_lower_case=False, strip_accents=False)
    tok = load_tokenizer(os.path.dirname(cased))
    assert (tok.do_lower_case, tok.strip_accents) == (False, False)
    assert any(any(c.isupper() for c in p) for p in _pieces(os.path.dirname(cased))[5:])
    lower_keep = train_wordpiece([corpus], str(tmp_path / "lk"), 800, do_lower_case=True, strip_accents=False)
    tok = load_tokenizer(os.path.dirname(lower_keep))
    assert (tok.do_lower_case, tok.strip_accents) == (True, False)
    assert tok.encode("Café") != tok.encode("cafe") and tok.encode("CAFE") == tok.encode("cafe")


def test_round_trip_through_hvd_data_create(corpus, vocab_dir, tmp_path):
    from hvd_pretrain.cli import data_create

    out = tmp_path / "data"
    code = data_create.main(["hvd-data create", "--input_files=" + corpus, "--vocab=" + vocab_dir,
                             "--out=%s" % out, "--dupe_factor=1", "--num_shards=1", "--num_workers=1",
                             "--noprogress", "--max_seq_length=64"])
    assert code == 0
    recs = datatools.records(str(out))
    assert len(recs) > 50
    first = recs[0]["input_ids"]
    assert first[0] == 2 and 3 in first  # [CLS] ... [SEP]
    assert max(max(r["input_ids"]) for r in recs) < len(_pieces(vocab_dir))


@pytest.mark.parametrize("args, message", [
    (["--input_files=/nonexistent/corpus.txt"], "input file not found"),
    (["--vocab_size=20"], "--vocab_size=20 is too small"),
    (["--wordpiece_unused=-1"], "--wordpiece_unused=-1"),
    (["--wordpiece_vocab=x/vocab.txt"], "pass only one"),
])
def test_bad_input_is_one_line_and_exit_2(corpus, tmp_path, capsys, args, message):
    from hvd_pretrain.cli import data_vocab

    argv = ["hvd-data vocab", "--input_files=" + corpus, "--out=%s" % (tmp_path / "v"), "--model_type=wordpiece"]
    code = data_vocab.main(argv + args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err


def test_binary_or_empty_input_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(DataError, match="empty"):
        train_wordpiece([str(empty)], str(tmp_path / "v"), 500)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="NUL"):
        train_wordpiece([str(binary)], str(tmp_path / "v"), 500)
