"""Input formats: compressed text, JSON Lines, Parquet and raw documents give the same documents, shards and vocab."""

import bz2
import gzip
import json
import lzma
import os

import pytest

from datatools import digest
from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, read_documents
from hvd_pretrain.inputs import InputConfig, ReadStats, detect_compression, inspect_input
from hvd_pretrain.inputs import read_documents as read_infos

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zstandard = pytest.importorskip("zstandard")

SHARDS = DataConfig(dupe_factor=1, num_shards=3)


def bert_text(documents):
    return "\n\n".join("\n".join(doc) for doc in documents) + "\n"


def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


@pytest.fixture(scope="module")
def documents(corpus_file):
    with open(corpus_file, encoding="utf-8") as f:
        text = f.read(150_000)
    return [doc.split("\n") for doc in text[:text.rfind("\n\n")].split("\n\n")]


@pytest.fixture(scope="module")
def written(documents, tmp_path_factory):
    """The same documents as plain text, compressed text, JSON Lines and Parquet: {name: path}."""
    root = tmp_path_factory.mktemp("formats")
    text = bert_text(documents).encode("utf-8")
    as_list = jsonl({"id": i, "text": doc} for i, doc in enumerate(documents))
    as_string = jsonl({"id": i, "text": "\n".join(doc)} for i, doc in enumerate(documents))
    files = {
        "plain.txt": text,
        "text.gz": gzip.compress(text),
        "text.zst": zstandard.ZstdCompressor(level=3).compress(text),
        "text.bz2": bz2.compress(text),
        "text.xz": lzma.compress(text),
        "list.jsonl": as_list,
        "string.jsonl.zst": zstandard.ZstdCompressor().compress(as_string),
        "list.jsonl.gz": gzip.compress(as_list),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = str(root / name)
        with open(paths[name], "wb") as f:
            f.write(data)
    paths["list.parquet"] = str(root / "list.parquet")
    pq.write_table(pa.table({"id": list(range(len(documents))), "text": documents}), paths["list.parquet"],
                   row_group_size=max(1, len(documents) // 4))
    paths["string.parquet"] = str(root / "string.parquet")
    pq.write_table(pa.table({"text": ["\n".join(doc) for doc in documents]}), paths["string.parquet"],
                   row_group_size=50, compression="zstd")
    return paths


def test_every_format_gives_byte_identical_shards(written, vocab, tmp_path):
    out = str(tmp_path / "plain")
    reference = create_pretraining_data([written["plain.txt"]], vocab, out, SHARDS)
    expected = digest(out)
    assert len(expected) == 3 and reference["input_formats"][0]["format"] == "text"
    for name, path in written.items():
        if name == "plain.txt":
            continue
        out = str(tmp_path / name)
        manifest = create_pretraining_data([path], vocab, out, SHARDS, num_workers=2)
        assert digest(out) == expected, name
        assert manifest["num_instances"] == reference["num_instances"]
        stats = manifest["input_stats"]
        assert stats["documents"] == reference["input_stats"]["documents"] and stats["lines"] > 0
        fmt = manifest["input_formats"][0]
        expected_format = "jsonl" if "jsonl" in name else "parquet" if "parquet" in name else "text"
        assert fmt["format"] == expected_format, (name, fmt)
        assert stats["records"] == (len(_documents_of(path)) if fmt["format"] != "text" else 0)
        assert not os.path.exists(os.path.join(out, ".staging")), "the converted copies are removed"


def _documents_of(path):
    return list(read_documents([path]))


def test_formats_are_told_apart_by_content_and_compression_by_magic_bytes(written, tmp_path):
    expect = {"plain.txt": ("text", "none"), "text.gz": ("text", "gzip"), "text.zst": ("text", "zstd"),
              "text.bz2": ("text", "bz2"), "text.xz": ("text", "xz"), "list.jsonl": ("jsonl", "none"),
              "string.jsonl.zst": ("jsonl", "zstd"), "list.parquet": ("parquet", "none")}
    for name, (fmt, codec) in expect.items():
        info = inspect_input(written[name])
        assert (info.format, info.compression) == (fmt, codec), name
    # The name says nothing: gzip bytes named .txt are gzip, plain text named .gz is text.
    disguised = tmp_path / "really_gzip.txt"
    disguised.write_bytes(open(written["text.gz"], "rb").read())
    honest = tmp_path / "really_text.gz"
    honest.write_bytes(open(written["plain.txt"], "rb").read())
    assert detect_compression(str(disguised)) == "gzip" and detect_compression(str(honest)) == "none"
    assert _documents_of(str(disguised)) == _documents_of(str(honest)) == _documents_of(written["plain.txt"])


def test_skipped_records_are_counted_with_reasons_in_the_manifest(documents, vocab, tmp_path):
    good = [{"text": doc} for doc in documents]
    lines = [json.dumps(r) for r in good[:40]]
    lines[3:3] = ['{"text": ["cut off', '{"body": "no text field"}', '{"text": null}', '{"text": 7}',
                  '{"text": "   "}', '{"text": ["ok", 3]}', '[1, 2]']
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines + [json.dumps(r) for r in good[40:]]) + "\n").encode()))
    manifest = create_pretraining_data([str(path)], vocab, str(tmp_path / "out"), SHARDS)
    stats = manifest["input_stats"]
    assert stats["records"] == len(documents) + 7
    assert (stats["bad_json_records"], stats["missing_field_records"], stats["not_text_records"],
            stats["empty_records"]) == (2, 2, 2, 1)
    assert stats["documents"] == len(documents)
    examples = stats["skipped_examples"]
    assert [(e["record"], e["reason"]) for e in examples] == [
        (4, "bad_json"), (5, "missing_field"), (6, "missing_field"), (7, "not_text"), (8, "empty"), (9, "not_text"),
        (10, "bad_json")]
    assert all(e["file"] == str(path) for e in examples)
    assert manifest["input_formats"] == [{"path": str(path), "format": "jsonl", "compression": "gzip"}]


def test_a_wrong_field_or_column_is_one_line_naming_what_the_file_has(written, tmp_path):
    with pytest.raises(DataError) as err:
        list(read_documents([written["list.jsonl"]], reading=InputConfig(text_field="body")))
    assert "'body'" in str(err.value) and "id, text" in str(err.value) and "--text_field" in str(err.value)
    with pytest.raises(DataError) as err:
        inspect_input(written["list.parquet"], InputConfig(text_column="content"))
    assert "'content'" in str(err.value) and "id, text" in str(err.value) and "--text_column" in str(err.value)
    with pytest.raises(DataError, match="is Parquet, not text"):
        inspect_input(written["list.parquet"], InputConfig(input_format="text"))


def test_a_damaged_compressed_file_is_a_data_error_naming_it(written, tmp_path):
    for name, codec in (("text.gz", "gzip"), ("text.zst", "zstd"), ("text.xz", "xz"), ("text.bz2", "bz2")):
        data = open(written[name], "rb").read()
        broken = tmp_path / ("broken-" + name)
        broken.write_bytes(data[:len(data) // 2])
        with pytest.raises(DataError) as err:
            list(read_documents([str(broken)]))
        message = str(err.value)
        assert str(broken) in message and codec in message and "\n" not in message, message


def test_parquet_is_read_one_row_group_at_a_time(written, monkeypatch):
    groups = []
    real = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        groups.append((i, tuple(kwargs.get("columns") or ())))
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("the whole file was read"))
    count = pq.ParquetFile(written["list.parquet"]).num_row_groups
    docs = _documents_of(written["list.parquet"])
    assert count >= 4 and groups == [(i, ("text",)) for i in range(count)]
    assert docs == _documents_of(written["plain.txt"])


def test_raw_documents_by_line_and_paragraph_with_sentence_splitting(tmp_path):
    line_file = tmp_path / "lines.txt"
    line_file.write_text("It costs 3.5 dollars; e.g. cheap. Dr. Smith agreed.\n"
                         "他说：“你好。”然后走了！还有（括号。）最后；完了……好的\n", encoding="utf-8")

    def docs(path, **options):
        return list(read_infos([inspect_input(str(path))], InputConfig(**options)))

    en = ["It costs 3.5 dollars; e.g. cheap.", "Dr. Smith agreed."]
    zh = ["他说：“你好。”", "然后走了！", "还有（括号。）", "最后；", "完了……", "好的"]
    assert docs(line_file, document_format="line", split_sentences="auto") == [en, zh]
    # auto decides per document: forcing one splitter on both gives something else for the other.
    assert docs(line_file, document_format="line", split_sentences="zh")[0] != en
    assert docs(line_file, document_format="line", split_sentences="en")[1] != zh
    assert docs(line_file, document_format="line", split_sentences="none") == [
        ["It costs 3.5 dollars; e.g. cheap. Dr. Smith agreed."], ["".join(zh)]]
    # paragraph: a document per blank-line block; wrapped lines are joined before splitting
    wrapped = tmp_path / "wrapped.txt"
    wrapped.write_text("The first sentence is\nwrapped. The second one\nis too.\n\n第一句话在这里\n换行了。第二句！\n",
                       encoding="utf-8")
    assert docs(wrapped, split_sentences="auto") == [["The first sentence is wrapped.", "The second one is too."],
                                                     ["第一句话在这里换行了。", "第二句！"]]
    assert docs(wrapped) == [["The first sentence is", "wrapped. The second one", "is too."],
                             ["第一句话在这里", "换行了。第二句！"]]


def test_a_jsonl_string_is_split_and_a_list_is_taken_as_sentences(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(jsonl([{"body": "One sentence here. Another one!\nA new paragraph."},
                            {"body": ["Kept whole. Not split.", "Second item"]}]))
    reading = InputConfig(text_field="body", split_sentences="en")
    stats = ReadStats()
    got = list(read_infos([inspect_input(str(path), reading)], reading, stats))
    assert got == [["One sentence here.", "Another one!", "A new paragraph."], ["Kept whole. Not split.", "Second item"]]
    assert stats.records == 2 and stats.documents == 2


def test_vocab_is_the_same_from_plain_text_and_compressed_jsonl(written, tmp_path):
    from hvd_pretrain.vocab import train_sentencepiece
    from hvd_pretrain.vocab.coverage import held_out_lines, training_lines

    names = ("plain.txt", "string.jsonl.zst", "list.parquet", "text.xz")
    models = []
    for name in names:
        with open(train_sentencepiece([written[name]], str(tmp_path / name), 400, num_threads=1), "rb") as f:
            models.append(f.read())
    assert models == [models[0]] * len(names)
    # Both trainers (SentencePiece and WordPiece) and the coverage report see the same sentences in every format
    # (HF's WordPiece trainer itself breaks ties differently from run to run, so its output is not compared).
    lines = [list(training_lines([written[name]], 7)) for name in names]
    held = [held_out_lines([written[name]], 7, 50) for name in names]
    assert lines == [lines[0]] * len(names) and held == [held[0]] * len(names) and len(held[0]) == 50


@pytest.mark.timeout(120)
def test_cli_flags_reach_vocab_create_and_newwords(tmp_path):
    from hvd_pretrain.cli import data_create, data_newwords, data_vocab
    from test_newwords_support import PLANTED, planted_corpus

    lines = planted_corpus(str(tmp_path / "zh.txt"), lines=1500, planted_times=60)
    records = jsonl({"meta": {"n": i}, "content": line} for i, line in enumerate(lines))
    corpus = tmp_path / "zh.jsonl.zst"
    corpus.write_bytes(zstandard.ZstdCompressor().compress(records))
    flags = ["--input_files=%s" % corpus, "--input_format=jsonl", "--text_field=content"]
    assert data_vocab.main(["vocab"] + flags + ["--out=%s" % (tmp_path / "vocab"), "--vocab_size=3500",
                                                "--num_threads=1", "--split_sentences=zh"]) == 0
    report = json.load(open(tmp_path / "vocab" / "vocab_report.json"))
    assert report["input_formats"][0]["compression"] == "zstd" and report["reading"]["split_sentences"] == "zh"
    assert data_create.main(["create"] + flags + ["--vocab=%s" % (tmp_path / "vocab"), "--out=%s" % (tmp_path / "d"),
                                                  "--dupe_factor=1", "--num_workers=1", "--noprogress"]) == 0
    manifest = json.load(open(tmp_path / "d" / "manifest.json"))
    assert manifest["reading"]["text_field"] == "content" and manifest["input_stats"]["records"] == len(lines)
    for source, extra in ((corpus, flags[1:]), (tmp_path / "zh.txt", [])):
        out = tmp_path / ("nw-" + source.name)
        assert data_newwords.main(["newwords", "--input_files=%s" % source, "--method=stats", "--base_dict=none",
                                   "--workers=1", "--quiet", "--out=%s" % out] + extra) == 0
    words = [open(tmp_path / ("nw-" + n) / "userdict.txt", encoding="utf-8").read() for n in (corpus.name, "zh.txt")]
    assert PLANTED in words[0].split() and words[0] == words[1]
    # a wrong field name is exit 2 with one line, for every tool
    assert data_create.main(["create", "--input_files=%s" % corpus, "--text_field=body", "--vocab=%s"
                             % (tmp_path / "vocab"), "--out=%s" % (tmp_path / "e"), "--noprogress"]) == 2


def test_reruns_keep_shards_and_conversions_and_refuse_other_reading_options(written, vocab, tmp_path):
    from hvd_pretrain.data.staging import stage_inputs
    from hvd_pretrain.inputs import inspect_inputs

    reading = InputConfig()
    infos = inspect_inputs([written["string.jsonl.zst"], written["plain.txt"]], reading)
    out = str(tmp_path / "staged")
    paths, stats = stage_inputs(infos, reading, out)
    assert paths[1] == written["plain.txt"] and stats.records == len(_documents_of(written["plain.txt"]))
    with open(paths[0], "rb") as f, open(written["plain.txt"], "rb") as g:
        assert f.read() == g.read()
    before = os.stat(paths[0]).st_mtime_ns
    again, stats_again = stage_inputs(infos, reading, out)
    assert again == paths and os.stat(paths[0]).st_mtime_ns == before and stats_again.records == stats.records
    # a finished output is kept on a rerun, and refused to other reading options
    out = str(tmp_path / "data")
    first = create_pretraining_data([written["list.jsonl.gz"]], vocab, out, SHARDS)
    shards = digest(out)
    rerun = create_pretraining_data([written["list.jsonl.gz"]], vocab, out, SHARDS)
    assert digest(out) == shards and rerun["run"]["shards_reused"] == first["num_shards"]
    with pytest.raises(DataError, match="another input format"):
        create_pretraining_data([written["list.jsonl.gz"]], vocab, out, SHARDS,
                                reading=InputConfig(split_sentences="en"))


def test_compressed_files_are_read_as_a_stream(tmp_path):
    import tracemalloc

    from hvd_pretrain.inputs import canonical_lines

    line = ("A sentence of a long document that repeats itself for a while. " * 3).strip() + "\n"
    block = (line * 2000).encode("utf-8")  # about 400 kB
    blocks = 100  # about 40 MB decompressed
    records = (json.dumps({"text": [line.strip()] * 2000}) + "\n").encode("utf-8")
    files = {"text.gz": (gzip.open, block), "text.zst": (None, block), "records.jsonl.zst": (None, records)}
    for name, (opener, data) in files.items():
        path = str(tmp_path / name)
        if opener:
            with opener(path, "wb") as f:
                for _ in range(blocks):
                    f.write(data)
        else:
            with open(path, "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as f:
                for _ in range(blocks):
                    f.write(data)
        info = inspect_input(path)
        tracemalloc.start()
        try:
            count = sum(1 for _ in canonical_lines(info))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert count >= blocks * 2000, name
        assert peak < 8 << 20, "%s: %d bytes at the peak for %d bytes of text" % (name, peak, blocks * len(data))
