"""Compressed corpus files: the codec from the file's first bytes, and a streaming reader.

The codec is read from the magic bytes at the start of the file, never from its
name: a `.txt` that is really gzip is read as gzip, and a `.gz` that holds plain
text is read as plain text.

    gzip   1f 8b                (RFC 1952; several members one after the other are read as one stream)
    bz2    42 5a 68 "BZh"       (bzip2; concatenated streams likewise)
    xz     fd 37 7a 58 5a 00    (the .xz container of LZMA2)
    zstd   28 b5 2f fd          (RFC 8878 frame; several frames are one stream)

`open_binary` returns a buffered binary stream that decompresses as it is read,
so memory stays at the codec's window plus the buffer, whatever the file's size.
A damaged or truncated file is a DataError naming the file and the codec.
"""

import bz2
import contextlib
import gzip
import io
import lzma

from hvd_pretrain.errors import DataError

CODECS = ("none", "gzip", "bz2", "xz", "zstd")
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
READ_BUFFER = 1 << 20


def detect_compression(path):
    """'gzip', 'bz2', 'xz', 'zstd' or 'none', from the first bytes of the file at `path`."""
    with open(path, "rb") as f:
        head = f.read(8)
    return compression_of(head)


def compression_of(head):
    """The codec whose magic bytes start `head` (bytes), or 'none'."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = (0x184D2A50, 0x184D2A5F)


def zstd_frames_complete(raw):
    """Walk the frame and block headers of a zstd stream (RFC 8878, section 3) from its start;
    return "" when every frame is whole, else what is wrong. Reads 3 bytes per block and seeks
    over the rest, so a file is checked in a fraction of the time it takes to decompress."""
    raw.seek(0, io.SEEK_END)
    size = raw.tell()
    pos = 0
    while pos < size:
        raw.seek(pos)
        head = raw.read(14)
        if len(head) < 4:
            return "%d stray bytes after the last frame" % (size - pos)
        magic = int.from_bytes(head[:4], "little")
        if _SKIPPABLE[0] <= magic <= _SKIPPABLE[1]:
            if len(head) < 8:
                return "the input ends inside a skippable frame"
            pos += 8 + int.from_bytes(head[4:8], "little")
            continue
        if magic != _ZSTD_MAGIC:
            return "no zstd frame at byte %d" % pos
        if len(head) < 5:
            return "the input ends inside a frame header"
        descriptor = head[4]
        single = descriptor >> 5 & 1
        fcs = {0: single, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3] + fcs
        checksum = 4 if descriptor >> 2 & 1 else 0
        while True:
            raw.seek(pos)
            block = raw.read(3)
            if len(block) < 3:
                return "the input ends inside a frame (truncated file)"
            header = int.from_bytes(block, "little")
            kind, length = header >> 1 & 3, header >> 3
            pos += 3 + (1 if kind == 1 else length)
            if pos > size:
                return "the input ends inside a frame (truncated file)"
            if header & 1:
                break
        pos += checksum
        if pos > size:
            return "the input ends inside a frame checksum (truncated file)"
    return ""


class _ZstdReader(io.RawIOBase):
    """zstandard's stream_reader (bounded memory: it decompresses only what is read), plus a check at
    the end of the stream: stream_reader ends quietly when the input stops inside a frame, so a
    truncated file would read as a shorter corpus. At EOF the frame headers are walked and a
    ZstdError raised unless every frame was whole."""

    def __init__(self, raw, zstandard):
        super().__init__()
        self._raw, self._zstd = raw, zstandard
        self._reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=READ_BUFFER,
                                                                  read_across_frames=True, closefd=False)
        self._checked = False

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self._reader.readinto(buffer)
        if n == 0 and not self._checked:
            self._checked = True
            problem = zstd_frames_complete(self._raw)
            if problem:
                raise self._zstd.ZstdError(problem)
        return n

    def close(self):
        self._reader.close()
        self._raw.close()
        super().close()


def _zstd_stream(raw):
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("reading zstd-compressed input needs the zstandard package; pip install zstandard") from None
    return io.BufferedReader(_ZstdReader(raw, zstandard), READ_BUFFER)


@contextlib.contextmanager
def open_binary(path, compression=None):
    """A readable binary stream of the decompressed content of `path` (with readline and iteration).

    compression: the codec, or None to detect it. Errors raised by the codec while reading
    (damaged or truncated data) become one DataError naming the file.
    """
    codec = compression or detect_compression(path)
    if codec not in CODECS:
        raise DataError("unknown compression %r for %s; use one of %s" % (codec, path, ", ".join(CODECS)))
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise DataError("cannot read input file %s: %s" % (path, e.strerror or e)) from None
    if codec == "none":
        stream = raw
    elif codec == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif codec == "bz2":
        stream = bz2.BZ2File(raw, mode="rb")
    elif codec == "xz":
        stream = lzma.LZMAFile(raw, mode="rb")
    else:
        stream = _zstd_stream(raw)
    try:
        with stream:
            yield stream
    except Exception as e:  # noqa: BLE001 - only the codecs' data errors are translated, the rest re-raised
        if codec == "none" or not _codec_error(e):
            raise
        raise DataError("input file %s is damaged or truncated (%s): %s; check the file or recompress it"
                        % (path, codec, str(e).strip() or type(e).__name__)) from None
    finally:
        raw.close()


def _codec_error(error):
    """True for the exceptions codecs raise on bad data (not for a closed file or a disk error)."""
    if isinstance(error, (EOFError, lzma.LZMAError, gzip.BadGzipFile)):
        return True
    if type(error).__name__ == "ZstdError":
        return True
    if not isinstance(error, OSError) or isinstance(error, FileNotFoundError):
        return False
    text = str(error).lower()
    return any(word in text for word in ("invalid data", "compressed file", "corrupt", "crc", "magic",
                                          "not a gzipped", "end-of-stream"))
