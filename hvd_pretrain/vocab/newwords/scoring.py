"""Statistical scores of candidate strings: frequency, cohesion, branching entropy.

- cohesion(w) = min over split points k of log p(w) / (p(w[:k]) p(w[k:])), with
  p(x) = count(x) / (number of positions for strings of len(x)), in nats;
- freedom(w) = min(left entropy, right entropy) of the neighbouring characters;
- score(w) = freedom * min(cohesion, COHESION_CAP) * log(count): the ranking key.

Thresholds scale with corpus size (see `resolve_thresholds`), so a 1 MB and a 1 GB
corpus both give useful output without tuning.
"""

import dataclasses
import math

import numpy as np

from hvd_pretrain.vocab.newwords import ngrams

COHESION_CAP = 12.0


@dataclasses.dataclass
class Thresholds:
    """0 (or a negative value) means: derive from the corpus size."""
    min_count: int = 0
    min_cohesion: float = 0.0
    min_entropy: float = 0.0


@dataclasses.dataclass
class Candidate:
    word: str
    freq: int
    cohesion: float = float("nan")
    left_entropy: float = float("nan")
    right_entropy: float = float("nan")
    rule: str = ""
    source: str = "stats"   # stats | rules | both | hmm (hmmwords.py)
    score: float = 0.0
    index: tuple = None     # (length, index) of its pass-2 statistics, for the neighbour pairs
    hmm_share: float = float("nan")  # share of its occurrences jieba's HMM yields as one piece (hmmwords.py)

    @property
    def freedom(self):
        return min(self.left_entropy, self.right_entropy)


def default_min_count(cjk_chars):
    """5 up to a 1M-character corpus, then growing with the square root of its size.
    Below 5 occurrences, branching entropy cannot tell a word from chance (3 distinct
    neighbours already give log 3 = 1.1 nats)."""
    return max(5, int(round(5 * math.sqrt(max(cjk_chars, 1) / 1e6))))


def default_min_cohesion(cjk_chars):
    """Chance co-occurrence has cohesion about 0; rare strings need a wider margin on
    small corpora, where a handful of co-occurrences already gives a large ratio."""
    return 2.0 + 1.0 / (1.0 + math.log10(max(cjk_chars, 10) / 1e5)) if cjk_chars > 1e5 else 3.0


def default_min_entropy(cjk_chars):
    """A free word sees varied neighbours on both sides. The entropy a string can
    reach grows with its count, so the floor grows slowly with corpus size."""
    return 1.0 + 0.1 * max(0.0, math.log10(max(cjk_chars, 1) / 1e6))


def resolve_thresholds(thresholds, cjk_chars):
    """Fill the thresholds left at 0 from the corpus size; return a new Thresholds."""
    return Thresholds(
        min_count=thresholds.min_count if thresholds.min_count > 0 else default_min_count(cjk_chars),
        min_cohesion=thresholds.min_cohesion if thresholds.min_cohesion > 0 else
        round(default_min_cohesion(cjk_chars), 3),
        min_entropy=thresholds.min_entropy if thresholds.min_entropy > 0 else
        round(default_min_entropy(cjk_chars), 3))


def score(freq, cohesion, freedom):
    """Ranking key; arrays or scalars."""
    return np.maximum(freedom, 0.0) * np.minimum(cohesion, COHESION_CAP) * np.log(np.maximum(freq, 1))


def _lookup(codes, counts, keys):
    """counts[codes == key] for each key, 0 where absent."""
    if len(codes) == 0:
        return np.zeros(len(keys), dtype=np.float64)
    idx = np.searchsorted(codes, keys)
    idx[idx == len(codes)] = 0
    found = codes[idx] == keys
    return np.where(found, counts[idx], 0).astype(np.float64)


def cohesion_of(n, words, freq, tables, positions):
    """Cohesion of same-length words. tables[k] = (sorted hashes, exact counts) for every
    length k < n; positions[k] = number of k-gram positions."""
    if not words:
        return np.zeros(0)
    matrix = np.array([[ord(c) for c in w] for w in words], dtype=np.uint64)
    log_pw = np.log(np.maximum(freq, 1) / positions[n])
    best = np.full(len(words), np.inf)
    for k in range(1, n):
        left = _lookup(*tables[k], ngrams.hash_matrix(matrix[:, :k]))
        right = _lookup(*tables[n - k], ngrams.hash_matrix(matrix[:, k:]))
        with np.errstate(divide="ignore"):
            pmi = log_pw - np.log(left / positions[k]) - np.log(right / positions[n - k])
        pmi[(left == 0) | (right == 0)] = -np.inf
        best = np.minimum(best, pmi)
    return best


def statistical_candidates(pass1, candidates, stats, thresholds, keep_all=False):
    """Score the pass-2 candidates; return those above `thresholds` (all if keep_all).

    candidates[n] are the sorted hashes and stats[n] the aligned CandidateStats.
    """
    tables = {1: pass1.unigrams}
    for n in sorted(candidates):
        tables[n] = (candidates[n], stats[n].freq)
    out = []
    for n in sorted(candidates):
        st = stats[n]
        present = np.array([w is not None for w in st.words], dtype=bool)
        if not present.any():
            continue
        idx = np.flatnonzero(present & (st.freq >= thresholds.min_count))
        words = [st.words[i] for i in idx]
        freq = st.freq[idx]
        cohesion = cohesion_of(n, words, freq, tables, pass1.positions)
        left, right = st.left_entropy[idx], st.right_entropy[idx]
        freedom = np.minimum(left, right)
        ok = np.ones(len(idx), dtype=bool) if keep_all else (
            (cohesion >= thresholds.min_cohesion) & (freedom >= thresholds.min_entropy))
        scores = score(freq, cohesion, freedom)
        for i in np.flatnonzero(ok):
            out.append(Candidate(word=words[i], freq=int(freq[i]), cohesion=float(cohesion[i]),
                                 left_entropy=float(left[i]), right_entropy=float(right[i]),
                                 score=float(scores[i]), index=(n, int(idx[i]))))
    return out
