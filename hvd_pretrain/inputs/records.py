"""Documents from records: JSON Lines (one JSON object per line) and Parquet (one row per document).

A record's text field (JSON Lines: `text_field`, Parquet: `text_column`) holds either

    a string           a document: each non-blank line is a paragraph, split into sentences
                       by the chosen splitter (`none`: each line is one sentence);
    a list of strings  the document's sentences, as they are (an item holding newlines is
                       one sentence per line).

Records that cannot be used are skipped and counted in ReadStats by reason: a line that
is not a JSON object (`bad_json`), no such field or null (`missing_field`), a value that
is neither (`not_text`), and text with no sentence left (`empty`). A file in which no
record has the field at all is a DataError naming the keys the first record has.

Parquet is read one row group at a time (pyarrow), only the text column; JSON Lines
one line at a time from the (decompressed) stream.
"""

import json

from hvd_pretrain.errors import DataError
from hvd_pretrain.inputs.compression import open_binary
from hvd_pretrain.inputs.sentences import split_sentences
from hvd_pretrain.textio import is_blank


def sentences_of(value, split):
    """(sentences, reason): the sentences of a field value, or ([], skip reason)."""
    if value is None:
        return [], "missing_field"
    if isinstance(value, str):
        sentences = split_sentences(value.split("\n"), split)
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        sentences = [line.strip() for item in value for line in item.split("\n") if line.strip()]
    else:
        return [], "not_text"
    return (sentences, None) if sentences else ([], "empty")


def _describe(value):
    kind = type(value).__name__
    return {"dict": "an object", "list": "a list with non-text items", "int": "a number",
            "float": "a number", "bool": "a boolean"}.get(kind, kind)


def jsonl_documents(path, compression, text_field, split, stats):
    """Documents (lists of sentences) of a JSON Lines file, in order, streaming."""
    records = missing = 0
    first_keys = None
    with open_binary(path, compression) as f:
        for number, line in enumerate(f, 1):
            if is_blank(line):
                continue
            records += 1
            stats.records += 1
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError) as e:
                stats.skip("bad_json", path, number, str(e)[:120])
                continue
            if not isinstance(record, dict):
                stats.skip("bad_json", path, number, "not a JSON object")
                continue
            if first_keys is None:
                first_keys = sorted(record)
            value = record.get(text_field)
            if text_field not in record:
                missing += 1
            sentences, reason = sentences_of(value, split)
            if reason:
                stats.skip(reason, path, number, "" if reason != "not_text" else _describe(value))
                continue
            yield sentences
    if records and missing == records:
        raise DataError("no record of %s has the field %r (the first has: %s); pass --text_field=NAME"
                        % (path, text_field, ", ".join(first_keys or []) or "no fields"))


def parquet_file(path):
    """pyarrow's ParquetFile for `path`; a DataError when it is not readable Parquet."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("reading Parquet input needs the pyarrow package; pip install pyarrow") from None
    try:
        return pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise DataError("input file %s is not readable Parquet: %s" % (path, str(e).splitlines()[0] if str(e)
                                                                         else type(e).__name__)) from None


def check_parquet_column(path, text_column):
    """Raise DataError unless the Parquet file has `text_column`, a string or list-of-string column."""
    pf = parquet_file(path)
    names = pf.schema_arrow.names
    if text_column not in names:
        raise DataError("Parquet file %s has no column %r (it has: %s); pass --text_column=NAME"
                        % (path, text_column, ", ".join(names)))
    return pf


def parquet_documents(path, text_column, split, stats):
    """Documents of a Parquet file, one row group at a time, reading only `text_column`."""
    pf = check_parquet_column(path, text_column)
    number = 0
    for group in range(pf.num_row_groups):
        try:
            values = pf.read_row_group(group, columns=[text_column]).column(0).to_pylist()
        except Exception as e:  # noqa: BLE001
            raise DataError("cannot read row group %d of Parquet file %s: %s" % (group, path, e)) from None
        for value in values:
            number += 1
            stats.records += 1
            sentences, reason = sentences_of(value, split)
            if reason:
                stats.skip(reason, path, number, "" if reason != "not_text" else _describe(value))
                continue
            yield sentences
        del values
