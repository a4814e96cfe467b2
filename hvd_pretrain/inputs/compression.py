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


class _ZstdRaw(io.RawIOBase):
    """zstd frames, one after the other, decompressed as they are read.

    zstandard's own stream_reader ends quietly when the input stops inside a frame; this
    reader raises ZstdError then, so a truncated file is an error and not a shorter corpus.
    """

    def __init__(self, raw, zstandard):
        super().__init__()
        self._raw, self._zstd = raw, zstandard
        self._dobj, self._in_frame = zstandard.ZstdDecompressor().decompressobj(), False
        self._out, self._pos, self._done = b"", 0, False

    def readable(self):
        return True

    def readinto(self, buffer):
        while self._pos >= len(self._out):
            if self._done:
                return 0
            data = self._raw.read(READ_BUFFER)
            if not data:
                if self._in_frame:
                    raise self._zstd.ZstdError("the input ends inside a frame (truncated file)")
                self._done = True
                return 0
            self._out, self._pos = self._decompress(data), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _decompress(self, data):
        parts = []
        while data:
            parts.append(self._dobj.decompress(data))
            self._in_frame = True
            if not self._dobj.eof:
                break
            data = self._dobj.unused_data
            self._dobj, self._in_frame = self._zstd.ZstdDecompressor().decompressobj(), False
        return b"".join(parts)

    def close(self):
        self._raw.close()
        super().close()


def _zstd_stream(raw):
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("reading zstd-compressed input needs the zstandard package; pip install zstandard") from None
    return io.BufferedReader(_ZstdRaw(raw, zstandard), READ_BUFFER)


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
