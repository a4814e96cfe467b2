"""One definition of a blank line, Python's str.strip() as in google-research/bert, shared by every reader."""

import sys

import pytest

from hvd_pretrain import textio
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, documents, read_documents
from hvd_pretrain.data.documents import check_text_file, next_document_start, plan_chunks
from hvd_pretrain.vocab import coverage
from hvd_pretrain.vocab.coverage import held_out_lines, training_lines
from hvd_pretrain.vocab.newwords import textio as newwords_textio

BLANK = ["", " ", "\t", "\u3000", "\u00a0", "\u3000\u3000 \t", "\u2003\u2009", "\u202f", "\u205f", "\u1680",
         "\x0b\x0c", "\x1c\x1d\x1e\x1f", "\u2028", "\u2029", "\u0085", "\r"]
NOT_BLANK = ["x", "\u200b", "\ufeff", "\u200c\u200d", "\u2060", "\u3000x\u3000", "\u00a0.", "\u180e"]


def googles_reader(path):
    """Documents as google-research/bert's create_pretraining_data.py reads them (readline, strip, empty ends)."""
    from bert import tokenization  # bert-tensorflow, a test extra
    docs = [[]]
    with open(path, "rb") as f:
        for line in iter(f.readline, b""):
            line = tokenization.convert_to_unicode(line).strip()
            if not line:
                docs.append([])
            else:
                docs[-1].append(line)
    return [d for d in docs if d]


@pytest.mark.parametrize("line", BLANK)
def test_whitespace_only_lines_are_blank_as_str_strip_says(line):
    assert textio.is_blank(line) and textio.is_blank(line.encode("utf-8"))


@pytest.mark.parametrize("line", NOT_BLANK)
def test_zero_width_characters_are_not_whitespace(line):
    assert not textio.is_blank(line) and not textio.is_blank(line.encode("utf-8"))


def test_the_byte_test_agrees_with_str_strip_on_every_code_point():
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        expected = not ch.strip()
        assert textio.is_blank(ch.encode("utf-8")) is expected, hex(code)
        assert textio.is_blank((" %s\t" % ch).encode("utf-8")) is expected, hex(code)
    assert not textio.is_blank(b"\xe3\x80")  # cut UTF-8: not blank (its reader counts it as invalid)


def test_every_reader_imports_the_one_definition():
    assert documents.is_blank is textio.is_blank
    assert coverage.is_blank is textio.is_blank
    assert newwords_textio.is_blank is textio.is_blank
    assert not [name for name in vars(textio) if name.startswith("hvd_pretrain")]


def _corpus(tmp_path, separators):
    """Two-sentence documents, one between each pair of separators; returns (path, number of documents)."""
    parts = []
    for i, sep in enumerate(separators):
        parts.append("Document %d opens here.\nDocument %d closes here.\n%s\n" % (i, i, sep))
    parts.append("The last document.\nIt ends the file.\n")
    path = tmp_path / "corpus.txt"
    path.write_bytes("".join(parts).encode("utf-8"))
    return str(path), len(separators) + 1


def test_create_reader_ends_documents_where_googles_reader_does(tmp_path):
    path, count = _corpus(tmp_path, BLANK[:-2] + ["\u200b", "\ufeff"])  # the last two continue a document
    ours = list(read_documents([path]))
    assert ours == googles_reader(path)
    assert len(ours) == count - 2


def test_chunk_splitter_starts_chunks_after_whitespace_only_lines(tmp_path):
    path, count = _corpus(tmp_path, ["\u3000", "\u00a0\t", "\u3000"])
    with open(path, "rb") as f:
        data = f.read()
    first_blank = data.index("\u3000\n".encode("utf-8"))
    assert next_document_start(path, 1) == first_blank + len("\u3000\n".encode("utf-8"))
    chunks = plan_chunks([path], 8)
    docs = [d for chunk in chunks for p, s, e in chunk for d in documents.iter_documents(p, s, e)]
    assert docs == list(read_documents([path])) and len(docs) == count
    assert len(chunks) == count  # every document start is a cut point


def test_create_counts_documents_split_by_unicode_whitespace(tmp_path):
    path, count = _corpus(tmp_path, ["\u3000", "\u00a0", "\t \t", "\u3000\u3000", "\u2003"])
    words = sorted({w for line in open(path, encoding="utf-8") for w in line.lower().replace(".", " .").split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n",
                                        encoding="utf-8")
    manifest = create_pretraining_data([path], str(tmp_path / "vocab.txt"), str(tmp_path / "out"),
                                       DataConfig(max_seq_length=32, max_predictions_per_seq=4, num_shards=3))
    assert manifest["documents"] == count and manifest["input_stats"]["documents"] == count


def test_a_file_of_whitespace_lines_is_empty(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\u3000\n\u00a0\n\t\n", encoding="utf-8")
    with pytest.raises(DataError, match="input file is empty"):
        check_text_file(str(path))


def test_vocab_training_and_held_out_lines_skip_the_same_blank_lines(tmp_path):
    path, _ = _corpus(tmp_path, ["\u3000", "\u00a0", "\u200b"])
    lines = [line for line in open(path, encoding="utf-8").read().split("\n") if line.strip()]
    assert held_out_lines([path], 1, 100) == lines
    assert list(training_lines([path], 0)) == lines
    assert [len(x) for x in (held_out_lines([path], 2, 100), list(training_lines([path], 2)))] == [4, 5]
    report = coverage.coverage_report(type("T", (), {"encode_batch": lambda self, s: [[1]] * len(s),
                                                     "unk_id": 0})(), ["a b", "\u3000", "\u00a0 "])
    assert report["sentences"] == 1


def test_new_word_reader_splits_and_drops_lines_like_the_others():
    raw = "第一行\n\u3000\n第二\u2028行\r\n\u00a0\t\n\u200b\n".encode("utf-8")
    assert newwords_textio.decode_lines(raw) == (["第一行", "第二\u2028行", "\u200b"], 0)
    lines, bad = newwords_textio.decode_lines(raw + b"\xff\xfe\n\xe3\x80\x80\n")
    assert lines == ["第一行", "第二\u2028行", "\u200b"] and bad == 1
