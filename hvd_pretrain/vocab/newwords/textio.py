"""Streaming input for new-word discovery: raw byte chunks, tolerant decoding, CJK tests.

The reader never holds more than one chunk of a file in memory. Decoding happens in
the worker processes: a chunk is split into lines and every line that is not valid
UTF-8 is skipped and counted, so one bad byte costs one line, not the file.

Compressed files, JSON Lines and Parquet are read through `hvd_pretrain.inputs` (the
reader every tool shares): their chunks are its lines, one sentence per line.
"""

import os

import numpy as np

from hvd_pretrain.errors import DataError
from hvd_pretrain.inputs import InputConfig, canonical_lines, detect_input, needs_conversion
from hvd_pretrain.textio import is_blank, split_lines

DEFAULT_CHUNK_BYTES = 1 << 20

# Code point ranges counted as CJK ideographs (Han characters only; kana and hangul are
# left out on purpose: the method is for Chinese).
CJK_RANGES = (
    (0x3007, 0x3007),    # 〇, used in dates and numbers
    (0x3400, 0x4DBF),    # extension A
    (0x4E00, 0x9FFF),    # unified ideographs
    (0xF900, 0xFAFF),    # compatibility ideographs
    (0x20000, 0x2FA1F),  # extensions B..F and compatibility supplement
)


class InputError(DataError):
    """The input cannot be used (missing, empty, unreadable). Message names the file."""


def check_input_files(paths, reading=None):
    """Raise InputError unless every path is a readable regular file; return total bytes (on disk).

    reading: the InputConfig; a file of a format it cannot read is a DataError naming it."""
    if not paths:
        raise InputError("no input files given; pass --input_files=FILE[,FILE...]")
    total = 0
    for path in paths:
        if not os.path.isfile(path):
            raise InputError("input file %s does not exist or is not a regular file" % path)
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise InputError("cannot read input file %s: %s" % (path, e.strerror)) from e
        size = os.path.getsize(path)
        if size:
            detect_input(path, reading)
        total += size
    return total


def iter_chunks(paths, chunk_bytes=DEFAULT_CHUNK_BYTES, reading=None):
    """Yield byte chunks of whole lines, about `chunk_bytes` each, across all files.

    A chunk never spans two files. A line longer than `chunk_bytes` becomes its own chunk.
    reading: the InputConfig; files that are not plain text are read as their sentences.
    """
    reading = reading or InputConfig()
    for path in paths:
        if not os.path.getsize(path):
            continue
        info = detect_input(path, reading)
        if needs_conversion(info, reading):
            yield from _line_chunks(canonical_lines(info, reading), chunk_bytes)
            continue
        with open(path, "rb") as f:
            while True:
                block = f.read(chunk_bytes)
                if not block:
                    break
                tail = f.readline()  # finish the last line of the block
                yield block + tail


def _line_chunks(lines, chunk_bytes):
    """Chunks of about `chunk_bytes` from an iterable of lines (bytes without "\n")."""
    parts, size = [], 0
    for line in lines:
        parts.append(line)
        size += len(line) + 1
        if size >= chunk_bytes:
            yield b"\n".join(parts) + b"\n"
            parts, size = [], 0
    if parts:
        yield b"\n".join(parts) + b"\n"


def decode_lines(raw):
    """Split a byte chunk into decoded, non-blank lines; return (lines, bad_line_count).

    Lines and blank lines are those of every other reader (`hvd_pretrain.textio`): a line
    ends at "\n", and a line of only whitespace (U+3000 and NBSP included) is dropped. Lines
    that are not valid UTF-8 are dropped and counted. A UTF-8 byte-order mark at the start
    of a line is removed.
    """
    try:
        lines, bad = split_lines(raw.decode("utf-8")), 0
    except UnicodeDecodeError:
        lines, bad = [], 0
        for piece in raw.split(b"\n"):
            try:
                lines.append(piece.decode("utf-8").rstrip("\r"))
            except UnicodeDecodeError:
                bad += 1
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return [line for line in lines if not is_blank(line)], bad


def codepoints(text):
    """The code points of `text` as a uint32 array (one element per Python character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def cjk_mask(cp):
    """Boolean array: True where the code point is a CJK ideograph."""
    mask = np.zeros(cp.shape, dtype=bool)
    for lo, hi in CJK_RANGES:
        mask |= (cp >= lo) & (cp <= hi)
    return mask


def is_cjk_char(ch):
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in CJK_RANGES)
