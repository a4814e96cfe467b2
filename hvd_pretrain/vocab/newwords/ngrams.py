"""Per-chunk n-gram counting in numpy: the work done inside the pool's worker processes.

An n-gram is a run of `n` consecutive CJK characters that does not cross a non-CJK
character or a line break. Each n-gram is identified by a 64-bit hash of its code points
(FNV-1a steps, then a murmur finaliser keyed by the length), computed for every
position at once with array arithmetic. Counting is np.unique over those hashes, so
memory per distinct n-gram is 12 bytes (hash + count) instead of a Python dict entry.

Pass 1 (`count_chunk`) counts every n-gram of length 1..max_len.
Pass 2 (`neighbour_chunk`) only looks at the candidates that survived pass 1: it counts
them exactly and records their left and right neighbour characters.
"""

import resource

import numpy as np

from hvd_pretrain.vocab.newwords import textio

MASK64 = (1 << 64) - 1
_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_LEN_KEY = 0x9E3779B97F4A7C15
_FMIX1 = 0xFF51AFD7ED558CCD
_FMIX2 = 0xC4CEB9FE1A85EC53

# Neighbour pairs pack (candidate index, code point) into one uint64.
CP_BITS = 21
CP_MASK = (1 << CP_BITS) - 1
BOUNDARY = 0  # neighbour "code point" for line ends, punctuation and spaces
DIGIT = 1     # every digit is the same neighbour: a string after "１２月" is not free
LATIN = 2     # likewise every Latin letter


def neighbour_codes(cp, cjk):
    """Neighbour symbol of each character: itself if CJK, else DIGIT, LATIN or BOUNDARY."""
    digit = ((cp >= 0x30) & (cp <= 0x39)) | ((cp >= 0xFF10) & (cp <= 0xFF19))
    upper = cp & ~np.uint32(0x20)
    latin = ((upper >= 0x41) & (upper <= 0x5A)) | ((cp >= 0xFF21) & (cp <= 0xFF3A)) | ((cp >= 0xFF41) & (cp <= 0xFF5A))
    out = np.full(cp.shape, BOUNDARY, dtype=np.uint64)
    out[digit] = DIGIT
    out[latin] = LATIN
    out[cjk] = cp[cjk]
    return out


def _fmix(h):
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_FMIX1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_FMIX2)
    return h ^ (h >> np.uint64(33))


def _finish(pre, n):
    return _fmix(pre ^ np.uint64((n * _LEN_KEY) & MASK64))


def rolling_hashes(cp, max_len):
    """Yield (n, hashes) for n = 1..max_len; hashes[i] identifies cp[i:i+n]."""
    cp64 = cp.astype(np.uint64)
    pre = np.full(len(cp64), _OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for n in range(1, max_len + 1):
            if len(cp64) < n:
                return
            pre = (pre[: len(cp64) - n + 1] ^ cp64[n - 1:]) * np.uint64(_PRIME)
            yield n, _finish(pre, n)


def hash_matrix(cps):
    """Hashes of the rows of a 2-D code point array (m, n): one uint64 per row."""
    cps = np.asarray(cps, dtype=np.uint64)
    pre = np.full(cps.shape[0], _OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(cps.shape[1]):
            pre = (pre ^ cps[:, k]) * np.uint64(_PRIME)
        return _finish(pre, cps.shape[1])


def hash_string(s):
    """The hash of one string, identical to what `rolling_hashes` gives for it."""
    h = _OFFSET
    for ch in s:
        h = ((h ^ ord(ch)) * _PRIME) & MASK64
    h ^= (len(s) * _LEN_KEY) & MASK64
    h ^= h >> 33
    h = (h * _FMIX1) & MASK64
    h ^= h >> 33
    h = (h * _FMIX2) & MASK64
    return h ^ (h >> 33)


def valid_starts(cjk, n):
    """valid[i] is True when cp[i:i+n] are all CJK."""
    bad = np.concatenate(([0], np.cumsum(~cjk, dtype=np.int64)))
    return (bad[n:] - bad[:-n]) == 0


def lines_to_array(lines):
    """Join lines with a separator that is not CJK; return (text, code points, cjk mask)."""
    text = "\n".join(lines)
    cp = textio.codepoints(text)
    return text, cp, textio.cjk_mask(cp)


def unique_counts(values):
    """Sorted unique values and their counts (uint32)."""
    if len(values) == 0:
        return values[:0], np.zeros(0, dtype=np.uint32)
    uniq, counts = np.unique(values, return_counts=True)
    return uniq, counts.astype(np.uint32)


def peak_rss():
    """Peak resident memory of this process, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ----------------------------------------------------------------------- pass 1
_PASS1 = {}


def init_pass1(max_len, proposer):
    """Pool initializer: remember the settings in the worker process."""
    _PASS1["max_len"] = max_len
    _PASS1["proposer"] = proposer


def count_chunk(raw):
    """Count all n-grams of one byte chunk. Returns a plain dict (pickled back to the parent)."""
    max_len = _PASS1["max_len"]
    lines, bad = textio.decode_lines(raw)
    text, cp, cjk = lines_to_array(lines)
    result = {
        "bytes": len(raw), "lines": len(lines), "bad_lines": bad,
        "chars": int(len(cp) - max(len(lines) - 1, 0)), "cjk_chars": int(cjk.sum()),
        "nonspace_chars": int(sum(len(line) - line.count(" ") - line.count("\t") for line in lines)),
        "positions": {}, "counts": {},
    }
    if result["cjk_chars"]:
        for n, hashes in rolling_hashes(cp, max_len):
            keep = valid_starts(cjk, n)
            result["positions"][n] = int(keep.sum())
            result["counts"][n] = unique_counts(hashes[keep])
    proposer = _PASS1.get("proposer")
    result["proposals"] = proposer.count_lines(lines) if proposer is not None else None
    result["worker_rss"] = peak_rss()
    return result


# ----------------------------------------------------------------------- pass 2
_PASS2 = {}


class HashIndex:
    """Open-addressing table (linear probing, load <= 1/4) from uint64 hash to its index
    in a candidate array. Lookups are vectorized and touch a table small enough to stay
    in cache, unlike a binary search over the sorted array."""

    def __init__(self, codes):
        size = 1 << max(4, int(np.ceil(np.log2(4 * len(codes) + 1))))
        self.mask = np.uint64(size - 1)
        self.keys = np.zeros(size, dtype=np.uint64)
        self.vals = np.full(size, -1, dtype=np.int64)
        pending = np.arange(len(codes))
        slot = (codes & self.mask).astype(np.int64)
        while len(pending):
            s = slot[pending]
            free = self.vals[s] == -1
            taken_slots, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            self.vals[taken_slots] = winners
            self.keys[taken_slots] = codes[winners]
            placed = np.zeros(len(codes), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & (size - 1)

    def lookup(self, queries):
        """Index of each query in the candidate array, -1 where absent."""
        out = np.full(len(queries), -1, dtype=np.int64)
        slot = (queries & self.mask).astype(np.int64)
        active = np.arange(len(queries))
        size_mask = len(self.keys) - 1
        while len(active):
            s = slot[active]
            v = self.vals[s]
            hit = (v >= 0) & (self.keys[s] == queries[active])
            out[active[hit]] = v[hit]
            active = active[(v >= 0) & ~hit]  # slot held by another key: probe the next one
            slot[active] = (slot[active] + 1) & size_mask
        return out


def init_pass2(max_len, candidates):
    """Pool initializer: candidates is {n: sorted uint64 hashes} for n >= 2."""
    _PASS2["max_len"] = max_len
    _PASS2["index"] = {n: HashIndex(c) for n, c in candidates.items() if len(c)}
    _PASS2["sizes"] = {n: len(c) for n, c in candidates.items()}
    _PASS2["seen"] = {n: np.zeros(len(c), dtype=bool) for n, c in candidates.items()}


def neighbour_chunk(raw):
    """Exact counts and neighbour characters of the pass-1 candidates in one chunk."""
    index, seen = _PASS2["index"], _PASS2["seen"]
    lines, _ = textio.decode_lines(raw)
    text, cp, cjk = lines_to_array(lines)
    out = {"worker_rss": peak_rss(), "lengths": {}}
    if not cjk.any():
        return out
    symbols = neighbour_codes(cp, cjk)
    left_all = np.concatenate(([BOUNDARY], symbols[:-1])).astype(np.uint64)
    for n, hashes in rolling_hashes(cp, _PASS2["max_len"]):
        table = index.get(n)
        if table is None:
            continue
        starts = np.flatnonzero(valid_starts(cjk, n))
        found = table.lookup(hashes[starts])
        hit = found >= 0
        starts, found = starts[hit], found[hit]
        if len(starts) == 0:
            continue
        idx = found.astype(np.uint64)
        ends = starts + n
        right = np.full(len(ends), BOUNDARY, dtype=np.uint64)
        inside = ends < len(cp)
        right[inside] = symbols[ends[inside]]
        left = left_all[starts]
        freq = np.bincount(found, minlength=_PASS2["sizes"][n]).astype(np.uint32)
        shift = np.uint64(CP_BITS)
        new_words = {}
        fresh = ~seen[n][found]
        if fresh.any():
            first_idx, first_pos = np.unique(found[fresh], return_index=True)
            for j, pos in zip(first_idx.tolist(), starts[fresh][first_pos].tolist()):
                new_words[j] = text[pos:pos + n]
            seen[n][first_idx] = True
        out["lengths"][n] = {
            "freq": freq,
            "left": unique_counts((idx << shift) | left),
            "right": unique_counts((idx << shift) | right),
            "words": new_words,
        }
    return out
