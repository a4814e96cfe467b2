"""Bounded-memory, two-pass n-gram counting over a process pool.

Pass 1 streams the input in chunks to the workers, which return per-chunk counts
(sorted hash arrays). The parent merges them into one table per length and, when the
table of n >= 2 grows past `max_entries`, prunes it: every n-gram whose count so far is
below a common floor is dropped (single characters are never dropped). Because a
substring is always counted at least as often as any string containing it, and all
lengths are pruned with the same floor at the same moment, the surviving table stays
closed under substrings. Without pruning pass 1 is exact; with it, an n-gram can be
missed only if its occurrences are spread so thinly that it stays below the floor
between prunes (the report lists every floor used).

Pass 2 streams the input again and counts, exactly, only the candidates (n >= 2 with a
pass-1 count >= min_count) plus their left and right neighbour characters.
"""

import collections
import ctypes
import dataclasses
import multiprocessing
import sys
import time

import numpy as np

from hvd_pretrain.vocab.newwords import ngrams, textio

BYTES_PER_ENTRY = 12          # uint64 hash + uint32 count
MERGE_OVERHEAD = 3.5          # peak bytes during a merge, as a multiple of the table
MIN_BUDGET_BYTES = 48 << 20


@dataclasses.dataclass
class CountConfig:
    max_len: int = 4
    workers: int = 2
    chunk_bytes: int = 256 << 10
    memory_budget_bytes: int = 0   # 0: 4x the input size, at least 48 MB
    min_merge_entries: int = 1 << 20
    reading: object = None         # hvd_pretrain.inputs.InputConfig of the input files (None: the defaults)


@dataclasses.dataclass
class CorpusStats:
    bytes: int = 0
    lines: int = 0
    bad_lines: int = 0
    chars: int = 0
    cjk_chars: int = 0
    nonspace_chars: int = 0
    chunks: int = 0

    def add(self, part):
        for field in ("bytes", "lines", "bad_lines", "chars", "cjk_chars", "nonspace_chars"):
            setattr(self, field, getattr(self, field) + part[field])
        self.chunks += 1


@dataclasses.dataclass
class Pass1Result:
    stats: CorpusStats
    positions: dict            # n -> number of n-gram positions (the N in p = count / N)
    unigrams: tuple            # (sorted hashes, counts), exact
    tables: dict               # n >= 2 -> (sorted hashes, counts), possibly pruned
    prunes: list               # [{"floor", "before", "after"}]
    peak_entries: int
    max_entries: int
    proposals: object          # rules.ProposalCounts or None
    seconds: float
    worker_rss: int            # largest peak RSS reported by a worker (bytes)


@dataclasses.dataclass
class CandidateStats:
    """Exact pass-2 statistics of the candidates of one length n (aligned arrays)."""
    words: list
    freq: np.ndarray
    left_entropy: np.ndarray
    right_entropy: np.ndarray
    pairs: int = 0             # distinct (candidate, neighbour) pairs held for this length
    left_pairs: tuple = None   # (sorted codes index << CP_BITS | neighbour, counts), as merged
    right_pairs: tuple = None

    def neighbours(self, index, side):
        """[(neighbour symbol, count)] of candidate `index` on `side` ('left' or 'right');
        symbols as ngrams.neighbour_codes (a code point, or BOUNDARY, DIGIT, LATIN)."""
        codes, counts = self.left_pairs if side == "left" else self.right_pairs
        shift = np.uint64(ngrams.CP_BITS)
        lo = np.searchsorted(codes, np.uint64(index) << shift)
        hi = np.searchsorted(codes, np.uint64(index + 1) << shift)
        mask = np.uint64(ngrams.CP_MASK)
        return [(int(c & mask), int(k)) for c, k in zip(codes[lo:hi], counts[lo:hi])]


def release_memory():
    """Give freed heap memory back to the OS (glibc keeps it otherwise), so the peak
    of one pass does not carry into the next one."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def merge_counts(parts):
    """Merge sorted (hashes, counts) pairs into one sorted pair, adding equal hashes."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32)
    if len(parts) == 1:
        return parts[0]
    codes = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    order = np.argsort(codes, kind="stable")  # runs are presorted: timsort merges them
    codes, counts = codes[order], counts[order]
    del order
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    return codes[starts], np.add.reduceat(counts, starts).astype(np.uint32)


def choose_floor(count_arrays, target):
    """Smallest floor f >= 2 such that at most `target` entries have count >= f."""
    cap = 1 << 16
    hist = np.zeros(cap + 1, dtype=np.int64)
    for counts in count_arrays:
        hist += np.bincount(np.minimum(counts, cap), minlength=cap + 1)
    at_least = np.cumsum(hist[::-1])[::-1]  # at_least[f] = entries with count >= f
    ok = np.flatnonzero(at_least[2:] <= target)
    return int(ok[0] + 2) if len(ok) else cap


def _run(config, function, initializer, initargs, chunks, absorb):
    """Apply `function` to every chunk, absorbing results in input order, with
    at most 2 x workers chunks in flight (bounded memory). Workers start from a fork
    server, so they do not inherit (and count in their RSS) this process's memory."""
    if config.workers <= 1:
        initializer(*initargs)
        for raw in chunks:
            absorb(function(raw))
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["hvd_pretrain.vocab.newwords.ngrams"])
    with ctx.Pool(config.workers, initializer=initializer, initargs=initargs) as pool:
        inflight = collections.deque()
        for raw in chunks:
            inflight.append(pool.apply_async(function, (raw,)))
            while len(inflight) >= 2 * config.workers:
                absorb(inflight.popleft().get())
        while inflight:
            absorb(inflight.popleft().get())


def max_entries_for(config, input_bytes):
    budget = config.memory_budget_bytes or max(MIN_BUDGET_BYTES, 4 * input_bytes)
    return max(1 << 16, int(budget / (BYTES_PER_ENTRY * MERGE_OVERHEAD)))


def count_pass1(paths, config, proposer=None, input_bytes=None):
    """Stream `paths` once and count n-grams of length 1..max_len in bounded memory."""
    start = time.time()
    if input_bytes is None:
        input_bytes = textio.check_input_files(paths, config.reading)
    max_entries = max_entries_for(config, input_bytes)
    stats = CorpusStats()
    positions = collections.Counter()
    tables = {n: (np.zeros(0, np.uint64), np.zeros(0, np.uint32)) for n in range(1, config.max_len + 1)}
    pending = {n: [] for n in tables}
    state = {"pending": 0, "peak": 0, "worker_rss": 0}
    prunes = []
    proposals = proposer.empty() if proposer is not None else None

    def table_entries(min_n=2):
        return sum(len(tables[n][0]) for n in tables if n >= min_n)

    def merge_pending():
        for n in tables:
            tables[n] = merge_counts([tables[n]] + pending[n])
            pending[n] = []
        state["pending"] = 0
        entries = table_entries()
        state["peak"] = max(state["peak"], entries)
        if entries > max_entries:
            floor = choose_floor([tables[n][1] for n in tables if n >= 2], max_entries // 2)
            for n in tables:
                if n >= 2:
                    keep = tables[n][1] >= floor
                    tables[n] = (tables[n][0][keep], tables[n][1][keep])
            after = table_entries()
            prunes.append({"floor": floor, "before": entries, "after": after})
            if proposals is not None:
                proposals.prune(floor)

    def absorb(part):
        state["worker_rss"] = max(state["worker_rss"], part["worker_rss"])
        stats.add(part)
        for n, pair in part["counts"].items():
            pending[n].append(pair)
            state["pending"] += len(pair[0])
        positions.update(part["positions"])
        if proposals is not None and part["proposals"] is not None:
            proposals.update(part["proposals"])
        if state["pending"] >= max(config.min_merge_entries, table_entries(1) // 2):
            merge_pending()

    _run(config, ngrams.count_chunk, ngrams.init_pass1, (config.max_len, proposer),
         textio.iter_chunks(paths, config.chunk_bytes, config.reading), absorb)
    merge_pending()
    return Pass1Result(
        stats=stats, positions=dict(positions), unigrams=tables.pop(1), tables=tables,
        prunes=prunes, peak_entries=state["peak"], max_entries=max_entries,
        proposals=proposals, seconds=time.time() - start,
        worker_rss=state["worker_rss"] if config.workers > 1 else 0)


def select_candidates(pass1, min_count):
    """Sorted hashes of the n >= 2 entries with a pass-1 count >= min_count."""
    return {n: codes[counts >= min_count] for n, (codes, counts) in pass1.tables.items()}


def branching_entropy(pairs, size):
    """Entropy (nats) of the neighbour distribution of each of `size` candidates.

    A boundary (line start or end, punctuation, any non-CJK character) counts as a new,
    distinct neighbour every time it occurs, so words that stand between punctuation are
    free: a word seen k times, always at a line start, has left entropy ln k.

    pairs: (uint64 codes packing candidate index << CP_BITS | neighbour, counts).
    Returns a float64 array of shape (size,); 0 for candidates without neighbours, and an
    empty float64 array when size is 0.
    """
    codes, counts = pairs
    codes = np.asarray(codes, dtype=np.uint64)
    idx = (codes >> np.uint64(ngrams.CP_BITS)).astype(np.int64)
    nb = codes & np.uint64(ngrams.CP_MASK)
    counts = np.asarray(counts, dtype=np.float64)
    total = _weighted_bincount(idx, counts, size)
    safe_total = np.where(total > 0, total, 1.0)
    real = nb != ngrams.BOUNDARY
    p = counts[real] / safe_total[idx[real]]
    entropy = _weighted_bincount(idx[real], -p * np.log(p), size)
    boundary = _weighted_bincount(idx[~real], counts[~real], size)
    entropy += boundary / safe_total * np.log(safe_total)
    return entropy


def _weighted_bincount(idx, weights, size):
    """np.bincount with weights, always float64 of shape (size,) (numpy returns int64
    for an empty `idx`, even with weights)."""
    return np.bincount(idx, weights=weights, minlength=size).astype(np.float64, copy=False)


def count_pass2(paths, config, candidates):
    """Stream `paths` again: exact counts and branching entropies of the candidates.
    Returns ({n: CandidateStats}, seconds, largest worker peak RSS in bytes)."""
    start = time.time()
    freq = {n: np.zeros(len(c), dtype=np.int64) for n, c in candidates.items()}
    sides = {(n, side): [] for n in candidates for side in ("left", "right")}
    sizes = {"pending": 0, "worker_rss": 0}
    merged = {(n, side): (np.zeros(0, np.uint64), np.zeros(0, np.uint32)) for n, side in sides}
    words = {n: [None] * len(c) for n, c in candidates.items()}

    def merge_sides():
        for key in sides:
            merged[key] = merge_counts([merged[key]] + sides[key])
            sides[key] = []
        sizes["pending"] = 0

    def absorb(part):
        sizes["worker_rss"] = max(sizes["worker_rss"], part["worker_rss"])
        for n, item in part["lengths"].items():
            freq[n] += item["freq"]
            for side in ("left", "right"):
                sides[(n, side)].append(item[side])
                sizes["pending"] += len(item[side][0])
            for j, word in item["words"].items():
                words[n][j] = word
        total = sum(len(v[0]) for v in merged.values())
        if sizes["pending"] >= max(config.min_merge_entries, total // 2):
            merge_sides()

    _run(config, ngrams.neighbour_chunk, ngrams.init_pass2, (config.max_len, candidates),
         textio.iter_chunks(paths, config.chunk_bytes, config.reading), absorb)
    merge_sides()
    result = {}
    for n in candidates:
        size = len(candidates[n])
        result[n] = CandidateStats(
            words=words[n], freq=freq[n],
            left_entropy=branching_entropy(merged[(n, "left")], size),
            right_entropy=branching_entropy(merged[(n, "right")], size),
            pairs=len(merged[(n, "left")][0]) + len(merged[(n, "right")][0]),
            left_pairs=merged[(n, "left")], right_pairs=merged[(n, "right")])
    return result, time.time() - start, (sizes["worker_rss"] if config.workers > 1 else 0)
