"""Classification tasks as GLUE and CLUE ship them: TSV with a header row, or JSON lines.

    GLUE   SST-2  train.tsv  "sentence<TAB>label"
           MRPC   train.tsv  "Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String"
           QQP, MNLI, QNLI, RTE ...: question1/question2, sentence1/sentence2, ...
    CLUE   AFQMC, TNEWS, IFLYTEK ... train.json / dev.json: {"sentence1": ..., "sentence2": ..., "label": "0"}

A task directory holds train.{tsv,jsonl,json} and dev.{tsv,jsonl,json}. The columns are found
by name (the first of TEXT_A / TEXT_B / LABEL present), or named with --text_a/--text_b/--label.
Labels are strings; their order (sorted, numbers by value) fixes the logit order. Pure Python.
"""

import csv
import json
import os
import sys

from hvd_pretrain.errors import DataError

TEXT_A = ("sentence", "sentence1", "text_a", "text", "question", "question1", "#1 String", "query", "content")
TEXT_B = ("sentence2", "text_b", "question2", "#2 String", "hypothesis", "passage")
LABEL = ("label", "Quality", "gold_label", "is_duplicate")
EXTENSIONS = (".tsv", ".jsonl", ".json")


class Task:
    """Examples of one split: text_a, text_b (None for single sentences) and label strings."""

    def __init__(self, path, text_a, text_b, labels):
        self.path = path
        self.text_a = text_a
        self.text_b = text_b
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    @property
    def is_pair(self):
        return self.text_b is not None

    def subset(self, indices):
        pick = lambda xs: [xs[i] for i in indices]  # noqa: E731
        return Task(self.path, pick(self.text_a), pick(self.text_b) if self.is_pair else None, pick(self.labels))


def split_file(task_dir, split):
    """The file of `split` ("train" or "dev") in a GLUE/CLUE task directory."""
    for ext in EXTENSIONS:
        path = os.path.join(task_dir, split + ext)
        if os.path.isfile(path):
            return path
    raise DataError("task directory %s has no %s (looked for %s); pass --%s_file=FILE"
                    % (task_dir, split + ".tsv", ", ".join(split + e for e in EXTENSIONS), split))


def _rows(path):
    """(column names, rows as dicts) of a TSV with a header row or a JSON-lines file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            if path.endswith(".tsv"):
                csv.field_size_limit(sys.maxsize)
                reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                rows = list(reader)
                return list(reader.fieldnames or []), rows
            rows = []
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise DataError("%s:%d is not a JSON object (%s); give one object per line" % (path, number, e))
                if not isinstance(row, dict):
                    raise DataError("%s:%d is not a JSON object; give one object per line" % (path, number))
                rows.append(row)
            return (list(rows[0]) if rows else []), rows
    except OSError as e:
        raise DataError("cannot read task file %s: %s" % (path, e.strerror or e)) from None
    except UnicodeDecodeError as e:
        raise DataError("%s is not UTF-8 text (%s)" % (path, e)) from None


def _column(path, columns, given, candidates, what, flag, required=True):
    if given:
        if given not in columns:
            raise DataError("%s has no column %r (--%s); its columns are: %s" % (path, given, flag, ", ".join(columns)))
        return given
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        raise DataError("%s has no %s column (looked for %s; its columns are: %s); name it with --%s"
                        % (path, what, ", ".join(candidates), ", ".join(columns) or "none", flag))
    return found


def read_task(path, text_a=None, text_b=None, label=None, pair=None):
    """A Task from a TSV/JSONL file. pair: None to detect, True/False to require (train's choice for dev).

    Raises DataError (one line, naming the file and line) for a missing column, an empty file, or a
    row without text or label.
    """
    columns, rows = _rows(path)
    if not rows:
        raise DataError("%s holds no examples" % path)
    a = _column(path, columns, text_a, TEXT_A, "text", "text_a")
    b = _column(path, columns, text_b, TEXT_B, "second-text", "text_b", required=bool(pair))
    if pair is False:
        b = None
    lab = _column(path, columns, label, LABEL, "label", "label")
    texts_a, texts_b, labels = [], [] if b else None, []
    offset = 2 if path.endswith(".tsv") else 1
    for number, row in enumerate(rows, start=offset):
        value, first = row.get(lab), row.get(a)
        second = row.get(b) if b else ""
        if value is None or str(value).strip() == "" or first is None or second is None:
            raise DataError("%s:%d has no %s; every row needs a text%s and a label"
                            % (path, number, lab if value is None or not str(value).strip() else
                               (a if first is None else b), " pair" if b else ""))
        texts_a.append(str(first))
        if b:
            texts_b.append(str(second))
        labels.append(str(value).strip())
    return Task(path, texts_a, texts_b, labels)


def label_order(labels):
    """Sorted label strings; all-numeric labels ("0", "1", "10") by value."""
    unique = set(labels)
    try:
        return sorted(unique, key=float)
    except ValueError:
        return sorted(unique)


def check_labels(train, dev, order):
    unknown = sorted(set(dev.labels) - set(order))
    if unknown:
        raise DataError("%s has labels the training split never shows (%s); the training file %s has: %s"
                        % (dev.path, ", ".join(map(repr, unknown[:5])), train.path, ", ".join(map(repr, order))))
    if len(order) < 2:
        raise DataError("%s has a single label %r; a classifier needs at least two" % (train.path, order[0]))
