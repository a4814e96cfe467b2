"""Whole-word boundaries from a reference file in Hugging Face run_mlm_wwm's format (`--ref_file`).

Chinese BERT-wwm models were trained on LTP's segmentation; Hugging Face's
examples/research_projects/mlm_wwm/run_chinese_ref.py writes it as a reference
file that run_mlm_wwm.py reads, and any other segmenter can write the same format:

    one line per non-blank input line, a JSON list of token positions, e.g. [2, 4, 5]

A position counts the line's tokens with [CLS] at 0 (the line tokenized alone, with
special tokens, as run_mlm_wwm does); each listed position is a token that continues
the word of the token before it. Tokens the vocab marks as continuations ("##" pieces)
continue a word whether listed or not; every other token starts one.

Alignment, exactly: the k-th non-blank line of the reference file belongs to the k-th
non-blank line of the input, the input files taken in the order they are read (as given,
each glob sorted). Lines end at "\\n" and a line is blank when only whitespace is left
after str.strip() (`hvd_pretrain.textio`), in both files, as in run_mlm_wwm, which drops
blank lines of both. Lines the reader skips (over-long, invalid UTF-8) still take their
reference line. The counts must agree: otherwise the run stops before any work with a
DataError naming both counts. A position past the line's tokens (a reference made with
another vocab or from other text) stops the run with a DataError naming the reference
line. A line longer than 510 tokens has references for its first 510 only (run_mlm_wwm
truncates at 512); its later tokens start words unless they are "##" pieces.

Each process scans the input and the reference file once to index them (every
STRIDE-th non-blank line's byte offsets), so that a worker starts reading references
at any document of any file; the scan that checks the file runs once, before workers
start, and worker processes forked from it inherit its index.
"""

import bisect
import json
import os

from hvd_pretrain.data.documents import iter_documents
from hvd_pretrain.errors import DataError
from hvd_pretrain.textio import is_blank

STRIDE = 4096  # non-blank lines between two index entries
MAX_REFERENCED_TOKENS = 510  # run_mlm_wwm tokenizes with truncation to 512, [CLS] and [SEP] included


class ReferencedLine(str):
    """A sentence (str) with its reference: `.ref_line` (1-based line of the reference file) and
    `.positions` (the token positions, [CLS] = 0, that continue a word)."""

    def __new__(cls, text, ref_line, positions):
        line = super().__new__(cls, text)
        line.ref_line, line.positions = ref_line, positions
        return line


def _non_blank_lines(path):
    """(byte offset, 1-based line number, raw line) of each non-blank line of `path`."""
    with open(path, "rb") as f:
        offset = 0
        for number, line in enumerate(f, 1):
            if not is_blank(line.rstrip(b"\r\n")):
                yield offset, number, line
            offset += len(line)


def parse_positions(raw, path, number):
    """The positions of one reference line; DataError naming the line when it is not a JSON list of ints >= 1."""
    try:
        positions = json.loads(raw)
    except ValueError:
        positions = None
    if not isinstance(positions, list) or not all(type(p) is int and p >= 1 for p in positions):
        raise DataError("--ref_file=%s line %d is not a JSON list of token positions (integers >= 1; [CLS] is 0):"
                        " %s" % (path, number, raw[:80].decode("utf-8", "replace").strip()))
    return positions


class ReferenceFile:
    """The `ref_file` segmenter: word boundaries read from a reference file aligned with the input lines.

    path: the reference file; input_files: the input files in reading order. Building it scans
    both (and, with check=True, parses every reference line); DataError when the file is
    missing, a line is not a list of positions, or the line counts differ.
    """

    by_line = True  # boundaries come with the lines read (read_documents), not from the text

    def __init__(self, path, input_files, check=True):
        if not os.path.isfile(path):
            raise DataError("--ref_file=%s not found; pass the reference file made from the input (one JSON list"
                            " of positions per non-blank input line)" % path)
        self.path, self.input_files = path, list(input_files)
        self._inputs = {}  # input path -> ([offsets], [ordinals]) of its index entries
        ordinal = 0
        for name in self.input_files:
            offsets, ordinals = [0], [ordinal]
            for offset, _, _ in _non_blank_lines(name):
                if ordinal % STRIDE == 0 and ordinal != ordinals[-1]:
                    offsets.append(offset)
                    ordinals.append(ordinal)
                ordinal += 1
            self._inputs[name] = (offsets, ordinals)
        self.input_lines = ordinal
        self._refs = []  # per STRIDE reference lines: (byte offset, line number) of the first
        count = 0
        for offset, number, raw in _non_blank_lines(path):
            if count % STRIDE == 0:
                self._refs.append((offset, number))
            if check:
                parse_positions(raw, path, number)
            count += 1
        self.reference_lines = count
        if count != ordinal:
            raise DataError("--ref_file=%s holds %d references but the input (%s) has %d non-blank lines; make it"
                            " from the same input files, one line per non-blank input line in reading order"
                            % (path, count, ",".join(self.input_files), ordinal))

    def _ordinal_at(self, path, start):
        """How many non-blank input lines come before byte `start` (a line start) of `path`."""
        if path not in self._inputs:
            raise DataError("%s is not among the input files the reference file %s was checked against"
                            % (path, self.path))
        offsets, ordinals = self._inputs[path]
        k = bisect.bisect_right(offsets, start) - 1
        ordinal, offset = ordinals[k], offsets[k]
        with open(path, "rb") as f:
            f.seek(offset)
            while offset < start:
                line = f.readline()
                if not line:
                    break
                if not is_blank(line.rstrip(b"\r\n")):
                    ordinal += 1
                offset += len(line)
        return ordinal

    def _references(self, ordinal):
        """(line number, positions) of the reference lines from the `ordinal`-th non-blank one on."""
        offset, number = self._refs[ordinal // STRIDE]
        skip = ordinal % STRIDE
        with open(self.path, "rb") as f:
            f.seek(offset)
            number -= 1
            for line in f:
                number += 1
                if is_blank(line.rstrip(b"\r\n")):
                    continue
                if skip:
                    skip -= 1
                    continue
                yield number, parse_positions(line, self.path, number)

    def read_documents(self, path, start=0, end=None, stats=None, max_line_bytes=None):
        """`documents.iter_documents` with each sentence a ReferencedLine carrying its reference."""
        kept, used, consumed = [], 0, 0
        references = self._references(self._ordinal_at(path, start))
        reference = None
        kwargs = {} if max_line_bytes is None else {"max_line_bytes": max_line_bytes}
        for document in iter_documents(path, start, end, stats, line_numbers=kept, **kwargs):
            lines = []
            for sentence, local in zip(document, kept[used:used + len(document)]):
                while consumed <= local:
                    reference = next(references)
                    consumed += 1
                lines.append(ReferencedLine(sentence, *reference))
            used += len(document)
            yield lines
        references.close()

    def clear_continuations(self, sentences, lengths, word_starts):
        """Mark the referenced tokens of each sentence as word continuations, in place.

        sentences: ReferencedLine per sentence; lengths: its token count; word_starts: bool array
        over all sentences' tokens, back to back. DataError when a position lies past its line's tokens.
        """
        base = 0
        for sentence, length in zip(sentences, lengths):
            length = int(length)
            positions = getattr(sentence, "positions", None)
            if positions is None:
                raise DataError("a sentence without its reference reached --ref_file's segmenter; this is a bug")
            for p in positions:
                if p > min(length, MAX_REFERENCED_TOKENS):
                    raise DataError("--ref_file=%s line %d: position %d is past the %d tokens of its input line"
                                    " (%s...); the references were made with another vocab or from other text"
                                    % (self.path, sentence.ref_line, p, length, sentence[:20]))
                word_starts[base + p - 1] = False
            base += length
        return word_starts
