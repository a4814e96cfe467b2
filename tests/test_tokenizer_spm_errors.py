"""SentencePiece training errors a corpus can cause come back as one line that says what to change."""

import os
import random

import pytest

from hvd_pretrain.data import DataError
from hvd_pretrain.vocab import load_tokenizer, train_sentencepiece


def _long_lines(path, count=20, words=1500):
    rand = random.Random(0)
    vocabulary = ["".join(rand.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rand.randint(2, 9)))
                  for _ in range(800)]
    path.write_text("".join(" ".join(rand.choice(vocabulary) for _ in range(words)) + "\n" for _ in range(count)),
                    encoding="utf-8")
    return str(path)


def _error(files, out, size, **options):
    with pytest.raises(DataError) as info:
        train_sentencepiece(files, str(out), size, num_threads=1, **options)
    message = str(info.value)
    assert "\n" not in message and "sentences_" not in message and "trainer_interface" not in message, message
    return message


def test_lines_longer_than_the_limit_name_the_limit_and_what_to_do(tmp_path):
    corpus = _long_lines(tmp_path / "long.txt")  # each line about 11 KB
    message = _error([corpus], tmp_path / "out", 200)
    assert "20 of 20 non-blank lines are longer than --max_sentence_length=4192 bytes" in message
    assert "split" in message and "raise --max_sentence_length" in message and corpus in message
    assert not os.path.exists(tmp_path / "out")  # nothing a rerun could take for a vocab
    message = _error([corpus], tmp_path / "out", 200, max_sentence_length=1000)
    assert "--max_sentence_length=1000 bytes" in message


def test_raising_max_sentence_length_trains_on_long_lines(tmp_path):
    corpus = _long_lines(tmp_path / "long.txt")
    train_sentencepiece([corpus], str(tmp_path / "out"), 200, num_threads=1, max_sentence_length=20_000)
    assert load_tokenizer(str(tmp_path / "out")).vocab_size == 200


def test_a_vocab_larger_than_the_text_allows_names_size_and_maximum(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("tiny corpus line one.\ntiny corpus line two.\n", encoding="utf-8")
    message = _error([str(tiny)], tmp_path / "out", 8000)
    assert "--vocab_size=8000" in message
    maximum = int(message.split("(maximum ")[1].split(")")[0])
    assert 10 < maximum < 8000
    assert not os.path.exists(tmp_path / "out")
    train_sentencepiece([str(tiny)], str(tmp_path / "ok"), maximum, num_threads=1)  # the maximum is right
    assert load_tokenizer(str(tmp_path / "ok")).vocab_size == maximum


def test_a_vocab_smaller_than_the_characters_names_the_minimum(tmp_path):
    text = tmp_path / "letters.txt"
    text.write_text("".join("%s %s.\n" % ("abcdefghijklmnopqrstuvwxyz" * 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                            for _ in range(30)), encoding="utf-8")
    message = _error([str(text)], tmp_path / "out", 20)
    assert "--vocab_size=20 is too small" in message and "at least" in message
    assert "--character_coverage" in message


def test_max_sentence_length_must_be_positive(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("some text\n", encoding="utf-8")
    assert "--max_sentence_length=0" in _error([str(text)], tmp_path / "out", 100, max_sentence_length=0)


def test_cli_long_lines_exit_2_with_one_line_and_the_flag_fixes_it(tmp_path, capsys):
    from hvd_pretrain.cli import data_vocab

    corpus = _long_lines(tmp_path / "long.txt", count=60)
    args = ["hvd-data vocab", "--input_files=" + corpus, "--vocab_size=200", "--num_threads=1"]
    assert data_vocab.main(args + ["--out=%s" % (tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "longer than --max_sentence_length=4192 bytes" in err
    assert not os.path.exists(tmp_path / "a" / "spm.model")
    assert data_vocab.main(args + ["--out=%s" % (tmp_path / "b"), "--max_sentence_length=20000"]) == 0
    assert load_tokenizer(str(tmp_path / "b")).vocab_size == 200


def test_options_sentencepiece_would_reject_are_one_line_errors(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("some text here\nand more text\n" * 20, encoding="utf-8")
    files = [str(text)]
    assert "--character_coverage=1.5 is out of range" in _error(files, tmp_path / "o", 40, character_coverage=1.5)
    assert "--character_coverage=0.5" in _error(files, tmp_path / "o", 40, character_coverage=0.5)
    assert "--input_sentence_size=-1" in _error(files, tmp_path / "o", 40, input_sentence_size=-1)
    with pytest.raises(DataError, match=r"--num_threads=-2 must be 0 \(all cores\) or a positive number"):
        train_sentencepiece(files, str(tmp_path / "o"), 40, num_threads=-2)
    assert "<url> more than once" in _error(files, tmp_path / "o", 40, user_defined_symbols=["<url>", "<url>"])


def test_a_file_that_is_not_a_model_is_one_line(tmp_path):
    (tmp_path / "spm.model").write_bytes(b"not a model\n")
    with pytest.raises(DataError) as info:
        load_tokenizer(str(tmp_path))
    assert str(info.value).startswith("%s is not a SentencePiece model" % (tmp_path / "spm.model"))
    assert "ParseFromArray" not in str(info.value) and "\n" not in str(info.value)


def test_a_wordpiece_vocab_that_is_not_text_is_one_line(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n\x80\x81\xfe\n")
    with pytest.raises(DataError, match=r"vocab.txt is not UTF-8 text; pass a BERT vocab.txt") as info:
        load_tokenizer(str(tmp_path))
    assert "codec" not in str(info.value)
