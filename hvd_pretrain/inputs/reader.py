"""The one reader of corpus files: every tool that reads a user's corpus goes through it.

A corpus file is, after decompression (compression.py, detected from magic bytes):

    text     UTF-8 lines. --document_format=paragraph: documents separated by blank lines
             (with --split_sentences=none each line is a sentence: google-research/bert's
             format); line: one document per line.
    jsonl    JSON Lines, one record (document) per line, text in --text_field.
    parquet  one row per document, text in --text_column (never compressed from outside:
             Parquet compresses its pages itself).

--input_format=auto tells them apart by content: Parquet by its "PAR1" magic, JSON Lines
when the first non-blank line is a JSON object, text otherwise.

Whatever the format, the reader produces the same thing: documents as lists of sentences,
or as the "canonical lines" of google-research/bert's format (UTF-8 bytes, one sentence
per line, an empty line between documents). The same documents therefore give the same
lines, and so the same vocab and the same shards, in every format. Plain text that needs
no splitting is passed through byte for byte (invalid UTF-8 included, which the consumers
count as they always have).

Memory: one line, one JSON record or one Parquet row group at a time.
"""

import json
import os
from dataclasses import dataclass

from hvd_pretrain.configs import Config, option
from hvd_pretrain.errors import DataError
from hvd_pretrain.inputs import records
from hvd_pretrain.inputs.compression import compression_of, open_binary
from hvd_pretrain.inputs.sentences import MODES, join_lines, split_sentences
from hvd_pretrain.inputs.stats import ReadStats
from hvd_pretrain.textio import SNIFF_BYTES, check_text_head, is_blank, strip_line

FORMATS = ("auto", "text", "jsonl", "parquet")
DOCUMENT_FORMATS = ("paragraph", "line")
PARQUET_MAGIC = b"PAR1"
MAX_SNIFF_LINE = 64 << 20  # a first JSON record longer than this is not looked at whole
DEFAULT_MAX_LINE_BYTES = 100_000
COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class InputConfig(Config):
    input_format: str = option("auto", "Input file format: auto (Parquet by its magic bytes, JSON Lines when the first"
                               " line is a JSON object, else text), text, jsonl or parquet. Compression (gzip, bz2,"
                               " xz, zstd) is detected from the bytes.", choices=FORMATS)
    text_field: str = option("text", "JSON Lines: the field holding a document's text (a string) or its sentences"
                             " (a list of strings).")
    text_column: str = option("text", "Parquet: the column holding a document's text (string) or its sentences"
                              " (list of strings).")
    document_format: str = option("paragraph", "Text input: paragraph (documents separated by blank lines) or line"
                                  " (one document per line).", choices=DOCUMENT_FORMATS)
    split_sentences: str = option("none", "Split documents into sentences: none (one sentence per line already),"
                                  " en (sentencex), zh (after 。！？；…), auto (per document by script).",
                                  choices=MODES)

    def validate(self):
        for name, choices in (("input_format", FORMATS), ("document_format", DOCUMENT_FORMATS),
                              ("split_sentences", MODES)):
            if getattr(self, name) not in choices:
                raise DataError("--%s=%s is invalid: choose one of %s" % (name, getattr(self, name),
                                                                          ", ".join(choices)))
        for name in ("text_field", "text_column"):
            if not getattr(self, name).strip():
                raise DataError("--%s is empty; name the field that holds the text" % name)
        return self

    @property
    def bert_text(self):
        """True when text files are read as they are: blank-line separated, one sentence per line."""
        return self.document_format == "paragraph" and self.split_sentences == "none"


@dataclass(frozen=True)
class InputInfo:
    """One checked input file: its path, format (text, jsonl, parquet) and compression."""

    path: str
    format: str
    compression: str

    @property
    def bytes(self):
        return os.path.getsize(self.path)

    def as_dict(self):
        return {"path": self.path, "format": self.format, "compression": self.compression}


def inspect_input(path, config=None, flag="--input_files"):
    """Check one input file and tell its format and compression; DataError naming the file otherwise.

    Beyond `detect_input`: the decompressed start must be non-empty UTF-8 text without NUL bytes."""
    config = config or InputConfig()
    info, head = _detect(path, config, flag)
    if info.format != "parquet":
        check_text_head(path, head, "JSON Lines" if info.format == "jsonl" else "text")
    if info.format == "jsonl":
        _check_field_in_head(path, head, config.text_field)
    return info


def _check_field_in_head(path, head, field):
    """Fail at once, not after reading the whole file, when no record at its start has the text field."""
    objects, keys = 0, None
    for line in head.split(b"\n")[:-1][:1000]:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            if field in record:
                return
            objects += 1
            keys = keys or sorted(record)
    if objects:
        raise DataError("none of the first %d records of %s has the field %r (the first has: %s); pass "
                        "--text_field=NAME" % (objects, path, field, ", ".join(keys) or "no fields"))


def detect_input(path, config=None, flag="--input_files"):
    """The InputInfo (format, compression) of an existing file, without judging its text."""
    return _detect(path, config or InputConfig(), flag)[0]


def _detect(path, config, flag):
    if not os.path.exists(path):
        raise DataError("input file not found: %s; check %s" % (path, flag))
    if not os.path.isfile(path):
        raise DataError("input is not a regular file: %s; pass files in %s" % (path, flag))
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as e:
        raise DataError("cannot read input file %s: %s" % (path, e.strerror or e)) from None
    wanted = config.input_format
    if magic.startswith(PARQUET_MAGIC) or wanted == "parquet":
        if wanted not in ("auto", "parquet"):
            raise DataError("input file %s is Parquet, not %s; pass --input_format=parquet (or auto)" % (path, wanted))
        records.check_parquet_column(path, config.text_column)
        return InputInfo(path, "parquet", "none"), b""
    compression = compression_of(magic)
    with open_binary(path, compression) as f:
        head = f.read(SNIFF_BYTES)
        if wanted == "auto":
            wanted = "jsonl" if _starts_with_json_object(head, f) else "text"
    return InputInfo(path, wanted, compression), head


def _starts_with_json_object(head, stream):
    """True when the first non-blank line is a JSON object (read on from `stream` when it is longer than head)."""
    start = len(head) - len(head.lstrip())
    if head[start:start + 1] != b"{":
        return False
    end = head.find(b"\n", start)
    line = head[start:] if end < 0 else head[start:end]
    if end < 0 and len(head) >= SNIFF_BYTES:
        line += stream.readline(MAX_SNIFF_LINE)
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def inspect_inputs(files, config=None, flag="--input_files"):
    """inspect_input for every file, before any is read; returns their InputInfos."""
    return [inspect_input(path, config, flag) for path in files]


def needs_conversion(info, config):
    """False when the file's bytes already are the canonical lines (uncompressed text read as it is)."""
    return not (info.format == "text" and info.compression == "none" and config.bert_text)


def documents_from_lines(lines, stats=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES, line_numbers=None):
    """Documents (lists of sentence strings) from canonical lines (bytes, without "\\n").

    Blank lines end documents; over-long and invalid UTF-8 lines are skipped and counted,
    and so are documents that skipping left empty. line_numbers: a list that receives, for each
    sentence yielded, the index of its line among the non-blank lines (0-based; skipped lines count).
    """
    stats = stats if stats is not None else ReadStats()
    document, skipped, non_blank = [], 0, -1
    for raw in lines:
        if is_blank(raw):
            if document:
                stats.documents += 1
                yield document
            elif skipped:
                stats.empty_documents += 1
            document, skipped = [], 0
            continue
        stats.lines += 1
        non_blank += 1
        if len(raw) > max_line_bytes:
            stats.overlong_lines += 1
            skipped += 1
            continue
        try:
            text = strip_line(raw.decode("utf-8"))
        except UnicodeDecodeError:
            stats.invalid_utf8_lines += 1
            skipped += 1
            continue
        document.append(text)
        if line_numbers is not None:
            line_numbers.append(non_blank)
    if document:
        stats.documents += 1
        yield document
    elif skipped:
        stats.empty_documents += 1


def source_documents(info, config, stats):
    """Documents of a file that needs conversion, as lists of sentences (str), in file order."""
    split = config.split_sentences
    if info.format == "jsonl":
        yield from records.jsonl_documents(info.path, info.compression, config.text_field, split, stats)
        return
    if info.format == "parquet":
        yield from records.parquet_documents(info.path, config.text_column, split, stats)
        return
    with open_binary(info.path, info.compression) as f:
        paragraph = []
        for raw in f:
            if is_blank(raw):
                if paragraph and config.document_format == "paragraph":
                    yield _paragraph_sentences(paragraph, split)
                paragraph = []
                continue
            try:
                line = strip_line(raw.decode("utf-8"))
            except UnicodeDecodeError:
                stats.invalid_utf8_lines += 1
                continue
            if config.document_format == "line":
                yield split_sentences([line], split)
            else:
                paragraph.append(line)
        if paragraph and config.document_format == "paragraph":
            yield _paragraph_sentences(paragraph, split)


def _paragraph_sentences(lines, split):
    if split == "none":
        return lines
    return split_sentences([join_lines(lines)], split)


def canonical_lines(info, config=None, stats=None):
    """The file as google-research/bert's lines: UTF-8 bytes without "\\n", b"" between documents."""
    config = config or InputConfig()
    stats = stats if stats is not None else ReadStats()
    if info.format == "text" and config.bert_text:  # compressed or not: the lines as they are
        with open_binary(info.path, info.compression) as f:
            for raw in f:
                yield raw.rstrip(b"\r\n")
        return
    first = True
    for document in source_documents(info, config, stats):
        if not document:
            continue
        if not first:
            yield b""
        first = False
        for sentence in document:
            yield sentence.encode("utf-8")


def corpus_lines(infos, config=None, stats=None):
    """canonical_lines of every file, one after the other (a blank line between files)."""
    for index, info in enumerate(infos):
        if index:
            yield b""
        yield from canonical_lines(info, config, stats)


def read_documents(infos, config=None, stats=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES):
    """Documents of every file, in order (streaming)."""
    for info in infos:
        yield from documents_from_lines(canonical_lines(info, config, stats), stats, max_line_bytes)


def write_canonical(info, out_path, config=None, stats=None):
    """Write the file's canonical lines to `out_path` (atomically: a temporary file, then rename).

    Text read as it is is copied through the decompressor unchanged. Returns the bytes written.
    """
    config = config or InputConfig()
    stats = stats if stats is not None else ReadStats()
    tmp = "%s.tmp.%d" % (out_path, os.getpid())
    try:
        with open(tmp, "wb", buffering=COPY_BUFFER) as out:
            if info.format == "text" and config.bert_text:
                with open_binary(info.path, info.compression) as f:
                    while True:
                        block = f.read(COPY_BUFFER)
                        if not block:
                            break
                        out.write(block)
            else:
                for line in canonical_lines(info, config, stats):
                    out.write(line)
                    out.write(b"\n")
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return os.path.getsize(out_path)
