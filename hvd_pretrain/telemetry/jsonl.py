"""Follow a growing JSONL file: read only what was appended since the last poll.

A monitor started next to a long run may face hundreds of megabytes of backlog.
`JsonlTail` keeps the offset and inode of one file and reads the backlog in
bounded chunks through `rundir.read_jsonl(path, offset, max_bytes)` (a trailing
line without a newline is a write in progress and waits for the next poll; a
complete line that is not a JSON object is counted as bad and skipped).
"""

import os

from hvd_pretrain import rundir

CHUNK_BYTES = 8 << 20


def read_jsonl_chunk(path, offset, max_bytes=CHUNK_BYTES):
    """rundir.read_jsonl bounded to about `max_bytes`, plus whether more complete lines may remain.

    Returns (records, new_offset, bad_lines, more).
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], offset, 0, False
    records, new_offset, bad = rundir.read_jsonl(path, offset, max_bytes)
    # Only a read cut short by max_bytes can leave complete lines behind (not a line being written).
    return records, new_offset, bad, size - offset > max_bytes and new_offset < size


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
    records, _ = rundir.parse_jsonl_lines(data[begin: end + 1]) if begin <= end else ([], 0)
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
