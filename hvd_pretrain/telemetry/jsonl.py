"""Follow a growing JSONL file: read only what was appended since the last poll.

`rundir.read_jsonl(path, offset)` reads everything after `offset` at once. That
is right for the usual few new lines per refresh, but a monitor started next to
a long run may face hundreds of megabytes of backlog. `JsonlTail` reads such a
backlog in bounded chunks (same rules: a trailing line without a newline is a
write in progress and waits for the next poll; a complete line that is not a
JSON object is counted as bad and skipped), and hands small remainders to
`rundir.read_jsonl` unchanged.
"""

import json
import os

from hvd_pretrain import rundir

CHUNK_BYTES = 8 << 20
SMALL_BYTES = 64 << 10  # remainders up to this size go to rundir.read_jsonl as they are


def _parse_lines(data):
    """Parse complete lines. Fast path: the whole chunk as one JSON array, in one call;
    any bad line (or a line holding more than one value) falls back to line by line."""
    lines = [raw for raw in data.splitlines() if raw.strip()]
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
        if len(values) == len(lines) and all(type(v) is dict for v in values):
            return values, 0
    except ValueError:
        pass
    records, bad = [], 0
    for raw in lines:
        try:
            obj = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            records.append(obj)
        else:
            bad += 1
    return records, bad


def read_jsonl_chunk(path, offset, max_bytes=CHUNK_BYTES):
    """Like rundir.read_jsonl, but reads at most about `max_bytes` past `offset`.

    Returns (records, new_offset, bad_lines, more) where `more` says that
    complete lines may remain after new_offset.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], offset, 0, False
    if size - offset <= min(max_bytes, SMALL_BYTES):
        records, new_offset, bad = rundir.read_jsonl(path, offset)
        return records, new_offset, bad, False
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
            end = data.rfind(b"\n")
            if end < 0 and len(data) < max_bytes:  # only a line still being written
                return [], offset, 0, False
            while end < 0:  # one line longer than the chunk: read on to its end
                more = f.read(max_bytes)
                if not more:
                    return [], offset, 0, False
                end = more.find(b"\n")
                if end >= 0:
                    end += len(data)
                data += more
    except OSError:
        return [], offset, 0, False
    records, bad = _parse_lines(data[: end + 1])
    new_offset = offset + end + 1
    return records, new_offset, bad, new_offset < size


def read_tail(path, max_bytes):
    """The complete records in the last `max_bytes` of a file, and the offset where they end.

    For a quick look at a large file before it is read in full; the cut line at
    the start of the window is dropped, not counted as bad.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return [], 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], 0
    begin = data.find(b"\n") + 1 if start > 0 else 0
    records, _ = _parse_lines(data[begin: end + 1]) if begin <= end else ([], 0)
    return records, start + end + 1


class JsonlTail:
    """The read position in one JSONL file, kept between polls.

    A file that shrank or was replaced (new inode) is read again from the start;
    `poll` then reports reset=True so the caller can drop what it had.
    """

    def __init__(self, path, chunk_bytes=CHUNK_BYTES):
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.offset = 0
        self.bad_lines = 0
        self.inode = None
        self.exists = False
        self.polls = 0

    def pending_bytes(self):
        try:
            return max(0, os.path.getsize(self.path) - self.offset)
        except OSError:
            return 0

    def poll(self):
        """Return (records, reset, more): one chunk of new complete records."""
        self.polls += 1
        try:
            st = os.stat(self.path)
        except OSError:
            self.exists = False
            return [], False, False
        self.exists = True
        reset = False
        if (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset:
            self.offset, self.bad_lines, reset = 0, 0, True
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return [], reset, False
        records, self.offset, bad, more = read_jsonl_chunk(self.path, self.offset, self.chunk_bytes)
        self.bad_lines += bad
        return records, reset, more
