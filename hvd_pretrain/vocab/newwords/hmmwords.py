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
  as one piece. A word with an HMM share below HMM_SHARE is ranked after every word at or
  above it: character statistics alone rank highly strings that jieba never isolates in
  context (斯坦, 耶夫, 较低, 今天在京). On People's Daily (jieba's dictionary removed), of the
  252 hybrid words before this change, the 125 below 0.1 held 8 of the 78 words that agree
  with the gold segmentation.

The count streams the input once more, in the main process, with the jieba tokenizer of
segmented.JiebaSegmentation: about 45 MB of text per CPU-minute. The table holds only the
unknown pieces; when it outgrows max_entries, the rarest are dropped with one common floor
(reported), as in pass 1.
"""

import collections

from hvd_pretrain.vocab.newwords import textio

HMM_SHARE = 0.1
MAX_ENTRIES = 2_000_000


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


def count_pieces(seg, lines, max_len, known, max_entries=MAX_ENTRIES, into=None):
    """Segment `lines` (str) with jieba, HMM on; count the pieces of 2..max_len CJK
    characters that are not in `known` (a container, or a callable word -> bool).
    Returns an HmmPieces (`into`, when given, is updated)."""
    out = into if into is not None else HmmPieces()
    is_known = known if callable(known) else known.__contains__
    count = out.count
    for line in lines:
        out.lines += 1
        for piece in seg.cut(line, hmm=True):
            if len(piece) >= 2 and is_candidate(piece, max_len) and not is_known(piece):
                count[piece] += 1
        if len(count) > max_entries:
            _prune(out, max_entries)
    return out


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
    known = seg.knows
    out = HmmPieces()
    for raw in textio.iter_chunks(paths, chunk_bytes, reading):
        lines, _ = textio.decode_lines(raw)
        count_pieces(seg, lines, max_len, known, max_entries, into=out)
    return out
