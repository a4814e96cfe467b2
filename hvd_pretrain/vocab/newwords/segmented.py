"""New-word filters that read jieba's segmentation (hybrid method, base dictionary jieba).

Character statistics cannot tell a word from a piece of a known word or from a phrase
that has the same statistics. jieba's segmentation (its dictionary, max-probability
route, no HMM; https://github.com/fxsjy/jieba) can:

- fragment: most occurrences end inside a word jieba knows (比上年增 in 增长, 占全 in
  全国). Judged from the neighbour characters counted in pass 2: for a right
  neighbour y, jieba segments word + y, and the occurrences with that neighbour end inside
  a word when jieba puts no boundary before y (likewise x + word on the left for starts).
  The shares are weighted by the neighbour counts; line ends, punctuation, digits and
  Latin letters are clean edges. A fragment has an end share >= FRAGMENT_END_SHARE (0.7).
  Starts are not judged by default (FRAGMENT_START_SHARE None): jieba joins a surname and
  the first character of a given name (王丽/华), so given names would all look like
  fragments.
- function edge: jieba segments the candidate; a first piece tagged in jieba's dictionary
  as adverb, conjunction, preposition or particle (d c p u), or a last piece tagged
  particle, modal, preposition or conjunction (u y p c), makes it a phrase (不忘 = 不/d 忘,
  仍有 = 仍/d 有). Numeral, time and direction tags are left out: jieba's tags of single
  characters are too coarse for them (克 in the name 王克 is tagged as the unit of weight).
- verb + object: a one-character verb followed by a known noun or verb of two or more
  characters (包/v 饺子/n, 写/v 春联/nz) is a phrase.
- rest of a known word: a candidate made of a known word of two or more characters and a
  rest of two or more characters jieba does not know (记者毛磊 = 记者 + 毛磊) is a phrase;
  the rest is proposed in its place (see hybrid.py), judged by its own statistics.
"""

import logging

from hvd_pretrain.vocab.newwords import ngrams

FRAGMENT_START_SHARE = None  # not judged: jieba joins a surname and a given name's first character (王丽/华)
FRAGMENT_END_SHARE = 0.7
FIRST_TAGS = frozenset("d c p u".split())
LAST_TAGS = frozenset("u y p c".split())
MAX_NEIGHBOURS = 40  # the most frequent neighbours per side that are segmented; the rest count as clean


class JiebaSegmentation:
    """jieba's default tokenizer (its dict.txt) and the dictionary tags of the words asked for.

    Loads jieba lazily, once (about 2 s and 80 MB)."""

    def __init__(self, dict_path):
        self.dict_path = dict_path
        self._tokenizer = None
        self._tags = {}

    def cut(self, text):
        if self._tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._tokenizer = jieba.Tokenizer()
            self._tokenizer.initialize()
        return self._tokenizer.lcut(text, HMM=False)

    def load_tags(self, words):
        """Read the dictionary tags (third column of dict.txt) of `words`."""
        wanted = set(words) - set(self._tags)
        if not wanted:
            return
        with open(self.dict_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0] in wanted:
                    self._tags[parts[0]] = parts[2]
        for word in wanted:
            self._tags.setdefault(word, "")

    def tag(self, word):
        return self._tags.get(word, "")


def _starts_inside(seg, left, word):
    """True when jieba, segmenting left + word, puts no boundary between them."""
    pos = 0
    for piece in seg.cut(left + word):
        pos += len(piece)
        if pos >= len(left):
            return pos != len(left)
    return False


def _ends_inside(seg, word, right):
    pos = 0
    for piece in seg.cut(word + right):
        pos += len(piece)
        if pos >= len(word):
            return pos != len(word)
    return False


def fragment_shares(seg, word, left, right):
    """(share of occurrences starting inside a known word, share ending inside one).

    left, right: [(neighbour symbol, count)] as CandidateStats.neighbours gives them; an
    empty list gives 0."""
    shares = []
    for side, pairs in (("left", left), ("right", right)):
        total = sum(k for _, k in pairs)
        inside = 0
        cjk = sorted(((k, c) for c, k in pairs if c > ngrams.LATIN), reverse=True)[:MAX_NEIGHBOURS]
        for k, c in cjk:
            ch = chr(c)
            if (_starts_inside(seg, ch, word) if side == "left" else _ends_inside(seg, word, ch)):
                inside += k
        shares.append(inside / total if total else 0.0)
    return tuple(shares)


def function_edge(seg, word):
    """'' or 'phrase:first:TAG' / 'phrase:last:TAG' from jieba's segmentation of `word`."""
    pieces = seg.cut(word)
    if len(pieces) < 2:
        return ""
    seg.load_tags(pieces)
    first, last = seg.tag(pieces[0]), seg.tag(pieces[-1])
    if first in FIRST_TAGS:
        return "phrase:first:" + first
    if last in LAST_TAGS:
        return "phrase:last:" + last
    if (len(pieces) == 2 and len(pieces[0]) == 1 and first == "v" and len(pieces[1]) >= 2
            and last[:1] in ("n", "v")):
        return "phrase:verb_object"
    return ""


def known_word_rest(word, known):
    """(rest, side of the known word 'left'/'right') when `word` is a known word of >= 2
    characters plus an unknown rest of >= 2 characters, else None. The longest known word wins."""
    for k in range(len(word) - 2, 1, -1):
        if word[:k] in known and word[k:] not in known:
            return word[k:], "left"
        if word[-k:] in known and word[:-k] not in known:
            return word[:-k], "right"
    return None
