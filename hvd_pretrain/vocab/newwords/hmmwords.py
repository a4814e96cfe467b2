"""Words jieba's HMM finds (hybrid method, base dictionary jieba).

jieba segments with its dictionary and joins the runs of single characters it cannot
place with a character-tagging HMM (B/M/E/S states trained on the People's Daily corpus;
https://github.com/fxsjy/jieba, `finalseg`). What the HMM joins and the dictionary does not
know is jieba's own guess at a new word, judged in context, occurrence by occurrence. Two
uses:

- candidates: a piece the HMM yields at least min_count times, 2..max_len CJK characters,
  unknown to jieba's dictionary, joins the statistical candidates (so it passes the same
  vetoes and fragment filters). Its character statistics alone often fail: the given name
  of a reporter always follows 记者, so its left entropy is 0, though each occurrence is
  bounded by jieba's known word on the left.
- ranking: the HMM share of a word is the share of its occurrences that jieba's HMM yields
  as one piece. It is defined for the words jieba's dictionary splits into single characters
  (the only strings its HMM can join). The words with a share of at least HMM_SHARE come
  first, then the words with a dictionary piece (no evidence either way), then the words
  with a lower share: character statistics alone rank highly strings that jieba never
  isolates in context (斯坦, 耶夫, 较低). On People's Daily (jieba's dictionary removed), of the
  252 hybrid words before this change, the 125 with a share below 0.1 held 8 of the 78 words
  that agree with the gold segmentation.

The count streams the input once more, in the main process, with the jieba tokenizer of
segmented.JiebaSegmentation. jieba segments each block of Chinese characters, letters and
digits on its own, so the new pieces of the most recent CACHE_BLOCKS distinct blocks are
remembered: repeated text (duplicate reviews, datelines) is segmented once. The table holds only the
unknown pieces; when it outgrows max_entries, the rarest are dropped with one common floor
(reported), as in pass 1.
"""

import collections

from hvd_pretrain.vocab.newwords import textio

HMM_SHARE = 0.1
MAX_ENTRIES = 2_000_000
CACHE_BLOCKS = 100_000  # blocks whose new pieces are remembered (repeated text is common: reviews, datelines)


class HmmPieces:
    """Counts of the pieces jieba's HMM yields that its dictionary does not know.

    count: {piece: occurrences as a piece}; floor: the largest count dropped by pruning
    (0: exact); lines: lines segmented."""

    def __init__(self):
        self.count = collections.Counter()
        self.floor = 0
        self.lines = 0

    def share(self, word, freq):
        """Share of the `freq` occurrences of `word` that jieba's HMM yields as one piece."""
        return min(self.count.get(word, 0) / freq, 1.0) if freq > 0 else 0.0

    def select(self, min_count):
        """The pieces seen at least `min_count` times, most frequent first."""
        return [w for w, k in self.count.most_common() if k >= min_count]


def is_candidate(piece, max_len):
    return 2 <= len(piece) <= max_len and all(textio.is_cjk_char(ch) for ch in piece)


def count_pieces(seg, lines, max_len, known, max_entries=MAX_ENTRIES, into=None, cache=None):
    """Segment `lines` (str) with jieba, HMM on; count the pieces of 2..max_len CJK
    characters that are not in `known` (a container, or a callable word -> bool).
    Returns an HmmPieces (`into`, when given, is updated). cache: {block: its new pieces},
    kept by the caller across calls (exact: jieba segments each block on its own)."""
    out = into if into is not None else HmmPieces()
    is_known = known if callable(known) else known.__contains__
    count = out.count
    cache = {} if cache is None else cache
    for line in lines:
        out.lines += 1
        for block in seg.blocks(line):
            new = cache.get(block)
            if new is None:
                new = tuple(piece for piece in seg.cut(block, hmm=True)
                            if is_candidate(piece, max_len) and not is_known(piece))
                if len(cache) >= CACHE_BLOCKS:
                    cache.clear()
                cache[block] = new
            for piece in new:
                count[piece] += 1
        if len(count) > max_entries:
            _prune(out, max_entries)
    return out


def evidence_of(share):
    """0: jieba's HMM yields the word as one piece in at least HMM_SHARE of its occurrences;
    1: no evidence (share NaN: the word holds a piece of jieba's dictionary, which the HMM
    never joins; or no HMM pass); 2: the HMM could join it but rarely or never does."""
    if share != share:
        return 1
    return 0 if share >= HMM_SHARE else 2


def evidence(cand):
    """evidence_of(cand.hmm_share): the part of the ranking a scoring.Candidate is in."""
    return evidence_of(cand.hmm_share)


def ranked_last(cand):
    """True for a word the HMM could join but yields as one piece in fewer than HMM_SHARE of
    its occurrences (set by rank)."""
    return evidence(cand) == 2


def rank(words, pieces, seg):
    """`words` (ranked scoring.Candidate) with their hmm_share set, reordered by evidence():
    the words jieba's HMM isolates first, then those it cannot judge, then those it could
    join but does not; the score order is kept within each part. A word with a piece of
    jieba's dictionary (完美屏 = 完美/屏) is never joined by the HMM, so its share says
    nothing and is left NaN."""
    for c in words:
        c.hmm_share = pieces.share(c.word, c.freq) if seg.splits_into_characters(c.word) else float("nan")
    return sorted(words, key=evidence)


def _prune(pieces, max_entries):
    """Drop the rarest pieces with one common floor until at most half of max_entries remain."""
    counts = sorted(pieces.count.values(), reverse=True)
    floor = counts[max_entries // 2] if len(counts) > max_entries // 2 else 0
    pieces.floor = max(pieces.floor, floor)
    for w in [w for w, k in pieces.count.items() if k <= floor]:
        del pieces.count[w]


def count_files(seg, paths, reading, max_len, chunk_bytes=textio.DEFAULT_CHUNK_BYTES, max_entries=MAX_ENTRIES):
    """count_pieces over every line of the input files (any corpus format of the data
    tools); the known words are those of jieba's own dictionary."""
    known = seg.knows_function()
    out, cache = HmmPieces(), {}
    for raw in textio.iter_chunks(paths, chunk_bytes, reading):
        lines, _ = textio.decode_lines(raw)
        count_pieces(seg, lines, max_len, known, max_entries, into=out, cache=cache)
    return out
