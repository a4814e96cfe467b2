"""Input text files: which to read, whether they are text, their lines, and the one definition of a blank
line that every reader shares.

A line is everything up to a "\\n" byte (a "\\r" before it is dropped); other
Unicode line separators (U+2028, U+0085, form feed, ...) stay inside the line,
as in google-research/bert's create_pretraining_data.py, which reads with
readline().

A line is blank when nothing is left after Python's `str.strip()`, the test of
that same reader (`tokenization.convert_to_unicode(line).strip()`, an empty
result ends a document). So a line holding only spaces, tabs, NBSP (U+00A0),
ideographic spaces (U+3000, common between Chinese paragraphs) or any other
character for which `str.isspace()` is true is blank. Zero-width characters
(U+200B ZERO WIDTH SPACE, U+200C/U+200D joiners, U+2060 WORD JOINER, U+FEFF
byte-order mark) are not whitespace to `str.strip()` (Unicode puts them in
category Cf, not Zs): a line holding only them is not blank, exactly as for
Google's reader. The tokenizers drop them (control characters), so such a line
adds no tokens and its document goes on.

Byte-level readers get the same answer from `is_blank(bytes)` without decoding
most lines: bytes.strip() knows only ASCII whitespace, so a line is decoded only
when what remains starts with a byte that can begin a non-ASCII whitespace
character. A line that is not valid UTF-8 is not blank.
"""

import glob
import os

from hvd_pretrain.errors import DataError

SNIFF_BYTES = 1 << 16  # how much of an input file is read to tell whether it is text


# First bytes of the UTF-8 encodings of the characters str.isspace() accepts beyond bytes.isspace():
# U+001C..U+001F, U+0085 and U+00A0 (0xC2 ..), U+1680 (0xE1 ..), U+2000..U+200A, U+2028, U+2029,
# U+202F, U+205F (0xE2 ..) and U+3000 (0xE3 ..).
_SPACE_LEAD_BYTES = frozenset(b"\x1c\x1d\x1e\x1f\xc2\xe1\xe2\xe3")


def is_blank(line):
    """True when `line` (str, or UTF-8 bytes) holds nothing but whitespace as Python's str.strip() sees it."""
    if isinstance(line, str):
        return not line.strip()
    rest = line.strip()
    if not rest:
        return True
    if rest[0] not in _SPACE_LEAD_BYTES:
        return False
    try:
        return not rest.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def strip_line(text):
    """A decoded line without the whitespace around it (str.strip(), as google-research/bert)."""
    return text.strip()


def iter_lines(path, start=0, end=None):
    """Raw lines (bytes, without "\\n" or "\\r\\n") of path[start:end); `start` must be a line start."""
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while end is None or pos < end:
            line = f.readline()
            if not line:
                break
            pos += len(line)
            yield line.rstrip(b"\r\n")


def split_lines(text):
    """The lines of a decoded text, by the same rule as `iter_lines` (split at "\\n", drop "\\r" at the end)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def expand_input_files(spec, flag="--input_files"):
    """A comma-separated string or a list of paths/globs -> sorted, de-duplicated existing files."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise DataError("%s is empty; pass one or more text files (comma-separated, globs allowed)" % flag)
    files = []
    for item in items:
        if glob.has_magic(item):
            matched = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not matched:
                raise DataError("%s=%s matches no file; check the pattern" % (flag, item))
            files.extend(matched)
        else:
            files.append(item)
    seen, unique = set(), []
    for path in files:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def check_text_file(path, flag="--input_files"):
    """Raise DataError unless `path` is an existing, non-empty, uncompressed text file.

    Corpus readers check their files with `hvd_pretrain.inputs.inspect_input`, which also
    takes compressed text, JSON Lines and Parquet."""
    if not os.path.exists(path):
        raise DataError("input file not found: %s; check %s" % (path, flag))
    if not os.path.isfile(path):
        raise DataError("input is not a regular file: %s; pass text files in %s" % (path, flag))
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise DataError("cannot read input file %s: %s" % (path, e.strerror or e)) from None
    check_text_head(path, head)


def check_text_head(path, head, what="text"):
    """Raise DataError unless `head` (the first bytes of the file, decompressed) looks like UTF-8 text."""
    if is_blank(head):
        raise DataError("input file is empty: %s; give it text, one sentence per line, blank line between documents"
                        % path)
    if b"\x00" in head:
        raise DataError("input file is not %s (it holds NUL bytes): %s; pass UTF-8 text, JSON Lines or Parquet"
                        % (what, path))
    lines = head.split(b"\n")[:-1] or [head]
    bad = 0
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
    if bad > 0.5 * len(lines):
        raise DataError("input file is not UTF-8 %s (%d of its first %d lines do not decode): %s"
                        % (what, bad, len(lines), path))
