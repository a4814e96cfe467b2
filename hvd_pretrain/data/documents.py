"""Text in google-research/bert's format: one sentence per line, blank line between documents.

Other inputs (compressed, JSON Lines, Parquet, raw documents) are read by
`hvd_pretrain.inputs`, which turns them into this format first.

What a line and a blank line are is defined once, in `hvd_pretrain.textio`, for
every reader (a line of only Unicode whitespace, such as U+3000, is blank).

Bad lines are skipped and counted, never silently: invalid UTF-8, over-long
lines and documents left empty by skipping all end up in a `ReadStats`, which
the data tool writes into its manifest. A file that is missing, empty or not
text at all is a `DataError` naming the file.
"""

import os

from hvd_pretrain.inputs import InputConfig, ReadStats, documents_from_lines, inspect_inputs
from hvd_pretrain.inputs import read_documents as _read_documents
from hvd_pretrain.textio import check_text_file, expand_input_files  # noqa: F401 - this module's API too
from hvd_pretrain.textio import is_blank, iter_lines

__all__ = ["ReadStats", "check_text_file", "expand_input_files", "iter_documents", "iter_lines",
           "next_document_start", "plan_chunks", "read_documents"]

DEFAULT_MAX_LINE_BYTES = 100_000


def iter_documents(path, start=0, end=None, stats=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES, line_numbers=None):
    """Documents (lists of sentence strings) whose first line lies in path[start:end) of a text file in
    google-research/bert's format (an input read as it is, or one converted by hvd_pretrain.inputs).

    line_numbers: a list that receives, for each sentence yielded, the index of its line
    among the non-blank lines from `start` (0-based; skipped lines count too).
    """
    return documents_from_lines(iter_lines(path, start, end), stats, max_line_bytes, line_numbers)


def read_documents(paths, stats=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES, reading=None):
    """Documents from whole files of any input format (`reading`: an InputConfig), in order.
    Every file is checked before any is read."""
    reading = reading or InputConfig()
    infos = inspect_inputs(expand_input_files(paths), reading)
    return _read_documents(infos, reading, stats, max_line_bytes)


def next_document_start(path, offset):
    """The first document start at or after `offset` (the position after a blank line), or the file size."""
    size = os.path.getsize(path)
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    with open(path, "rb") as f:
        f.seek(offset - 1)
        pos = offset - 1
        # Finish the line that holds byte offset-1; the next line starts at or after `offset`.
        pos += len(f.readline())
        while pos < size:
            line = f.readline()
            pos += len(line)
            if is_blank(line):
                return pos
    return size


def plan_chunks(files, num_chunks):
    """Split the files into about `num_chunks` byte ranges that start and end at document boundaries.

    Returns a list of chunks, each a list of (path, start, end). The plan depends only on
    the files and `num_chunks`, never on how many workers process it, so output made from
    it is the same for any worker count. Chunks that would be empty are dropped.
    """
    sizes = [os.path.getsize(p) for p in files]
    total = sum(sizes)
    num_chunks = max(1, int(num_chunks))
    # Global cut points, each moved forward to the next document start in its file.
    cuts = [(0, 0)]
    for k in range(1, num_chunks):
        target, base = total * k // num_chunks, 0
        for index, size in enumerate(sizes):
            if target < base + size:
                cuts.append((index, next_document_start(files[index], target - base)))
                break
            base += size
    cuts.append((len(files) - 1, sizes[-1]))
    chunks = []
    for (f0, o0), (f1, o1) in zip(cuts[:-1], cuts[1:]):
        segments = []
        for index in range(f0, f1 + 1):
            start = o0 if index == f0 else 0
            end = o1 if index == f1 else sizes[index]
            if end > start:
                segments.append((files[index], start, end))
        if segments:
            chunks.append(segments)
    return chunks
