"""New-word filters that read jieba's segmentation (hybrid method, base dictionary jieba).

Character statistics cannot tell a word from a piece of a known word or from a phrase
that has the same statistics. jieba's segmentation (its dictionary, max-probability
route, no HMM; https://github.com/fxsjy/jieba) can:

- fragment: most occurrences start or end inside a word jieba knows (阳市 in 洛阳/市,
  长刘 in 部长/刘, 比上年增 in 增长). Judged from the neighbour characters counted in pass 2:
  for a left neighbour x, jieba segments x + word, and the occurrences with that neighbour
  start inside a word when jieba puts no boundary after x (likewise word + y on the right).
  The shares are weighted by the neighbour counts; line ends, punctuation, digits and
  Latin letters are clean edges, and so, on the left, is a piece jieba's dictionary tags
  as a personal name: jieba joins a surname and the first character of a given name
  (王丽/华). On the left, a number (digits or Chinese numerals) also counts as an edge
  inside a unit: the candidate then starts with the measure word or magnitude that belongs
  to the number (万人 in １０万/人, 元钱, 枚金牌, 月上旬 after a date). A fragment has a start
  share or an end share >= FRAGMENT_SHARE (0.5: "mostly", the majority of its occurrences).
  On People's Daily (jieba's dictionary removed), of the 306 words reported with the first
  threshold (0.7), none with a share of 0.3 or more agreed with the gold segmentation, so the
  majority rule is conservative.
- function edge: jieba segments the candidate; a first piece tagged in jieba's dictionary
  as adverb, conjunction, preposition or particle (d c p u), or a last piece tagged
  particle, modal, preposition or conjunction (u y p c), makes it a phrase (不忘 = 不/d 忘,
  仍有 = 仍/d 有). A first piece that is one numeral character (一 .. 十, 两) makes a
  numeral phrase (两国, 三人, 五好, 一胜). Other numeral, time and direction tags are left out:
  jieba's tags of single characters are too coarse for them (克 in the name 王克 is tagged as
  the unit of weight; 万 and 百 are also surnames). A last piece that is one of the common
  localizers 上 下 中 里 前 后 外 makes a noun + localizer phrase (书中, 床前, 灯下); jieba's tag f
  alone is too wide (it also tags 间, the room of 标间). Two
  single characters both tagged as place names or abbreviations (ns, j) are a coordination
  of places (美欧, 俄法: the United States and Europe, Russia and France).
- verb + object: a one-character verb followed by a known noun or verb of two or more
  characters (包/v 饺子/n, 写/v 春联/nz) is a phrase.
- rest of a known word: a candidate made of a known word of two or more characters and a
  rest of two or more characters jieba does not know (记者毛磊 = 记者 + 毛磊) is a phrase;
  the rest is proposed in its place (see hybrid.py), judged by its own statistics.
"""

import logging

from hvd_pretrain.vocab.newwords import ngrams

FRAGMENT_SHARE = 0.5
STEM_TAGS = frozenset({"ns", "nt"})  # known word = candidate + suffix: place or organization (唐山市)
NUMERALS = frozenset("〇零一二三四五六七八九十百千万亿两")  # with ngrams.DIGIT: a number on the left
FIRST_NUMERALS = frozenset("一二三四五六七八九十两")  # a first piece of one numeral: 两国, 三人, 五好
LOCALIZERS = frozenset("上下中里前后外")  # a last piece of one of these: noun + localizer (书中, 灯下)
FIRST_TAGS = frozenset("d c p u".split())
ABBREVIATION_TAGS = frozenset(("ns", "j"))  # 美/ns 欧/ns, 俄/j 法/j: a pair of place abbreviations
LAST_TAGS = frozenset("u y p c".split())
MAX_NEIGHBOURS = 40  # the most frequent neighbours per side that are segmented; the rest count as clean


class JiebaSegmentation:
    """jieba's default tokenizer (its dict.txt) and the dictionary tags of the words asked for.

    Loads jieba lazily, once (about 2 s and 80 MB)."""

    def __init__(self, dict_path):
        self.dict_path = dict_path
        self._tokenizer = None
        self._tags = {}

    def _load(self):
        if self._tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._tokenizer = jieba.Tokenizer()
            self._tokenizer.initialize()
            self._han = jieba.re_han_default
        return self._tokenizer

    def cut(self, text, hmm=False):
        """jieba's pieces of `text`: dictionary only, or with `hmm` its HMM joining the
        runs of single characters the dictionary cannot place."""
        return self._load().lcut(text, HMM=hmm)

    def blocks(self, text):
        """The blocks of `text` that jieba segments each on its own (runs of Chinese
        characters, letters, digits and a few joiners, jieba's re_han_default); the rest
        (punctuation, spaces) never joins a piece."""
        self._load()
        return self._han.split(text)[1::2]  # the pattern is one group: matches at the odd places

    def knows(self, word):
        """True when `word` is a word of jieba's dictionary (not only a prefix of one)."""
        return self._load().FREQ.get(word, 0) > 0

    def knows_function(self):
        """knows() as a plain function over jieba's frequency table, for tight loops."""
        freq = self._load().FREQ.get
        return lambda word: freq(word, 0) > 0

    def splits_into_characters(self, word):
        """True when jieba's dictionary cannot place any piece of `word` longer than one
        character (王磊 = 王/磊): only then can its HMM yield `word` as one piece."""
        return all(len(piece) == 1 for piece in self.cut(word))

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


def _crossing_piece(seg, text, boundary):
    """The jieba piece of `text` that spans offset `boundary`, or None when a piece ends there."""
    pos = 0
    for piece in seg.cut(text):
        if pos < boundary < pos + len(piece):
            return piece
        pos += len(piece)
        if pos >= boundary:
            return None
    return None


def crossings(seg, word, pairs, side):
    """(total count, [(piece, count)]): for the most frequent CJK neighbours on `side`, the
    jieba piece that joins the neighbour with `word` (neighbour + word on the left, word +
    neighbour on the right) where jieba puts no boundary between them.

    pairs: [(neighbour symbol, count)] as CandidateStats.neighbours gives them."""
    total = sum(k for _, k in pairs)
    out = []
    cjk = sorted(((k, c) for c, k in pairs if c > ngrams.LATIN), reverse=True)[:MAX_NEIGHBOURS]
    for k, c in cjk:
        ch = chr(c)
        piece = (_crossing_piece(seg, ch + word, 1) if side == "left"
                 else _crossing_piece(seg, word + ch, len(word)))
        if piece is not None:
            out.append((piece, k))
    return total, out


def number_count(pairs):
    """How many of the neighbour pairs [(symbol, count)] are digits or Chinese numerals."""
    return sum(k for c, k in pairs if c == ngrams.DIGIT or (c > ngrams.LATIN and chr(c) in NUMERALS))


def crossing_share(seg, total, pieces, side, numbers=0, word=""):
    """Share of the occurrences whose start (side 'left') or end crosses a known word, or,
    on the left, follows a number (`numbers` occurrences, see number_count). On the left a
    piece tagged as a personal name (nr...) does not count: jieba joins a surname and the
    first character of a given name (王丽/华). On the right, a piece that is exactly `word`
    plus the neighbour and tagged as a place or organization (STEM_TAGS) does not count:
    jieba's dictionary lists many places with their suffix (唐山市) and the candidate is then
    their stem; other such pieces still count (王永 + 庆, 另一 + 个, 近两 + 年). The tags must
    be loaded (seg.load_tags)."""
    if not total:
        return 0.0
    if side == "right":
        inside = sum(k for piece, k in pieces if not (
            word and len(piece) == len(word) + 1 and piece.startswith(word) and seg.tag(piece) in STEM_TAGS))
    else:  # a left piece starts with the neighbour; numeral neighbours are counted in `numbers`
        inside = numbers + sum(k for piece, k in pieces
                               if piece[:1] not in NUMERALS and not seg.tag(piece).startswith("nr"))
    return min(inside / total, 1.0)


def fragment_shares(seg, word, left, right):
    """(share of occurrences starting inside a known word, share ending inside one); an
    empty neighbour list gives 0."""
    left_total, left_pieces = crossings(seg, word, left, "left")
    right_total, right_pieces = crossings(seg, word, right, "right")
    seg.load_tags(piece for piece, _ in left_pieces + right_pieces)
    return (crossing_share(seg, left_total, left_pieces, "left", number_count(left)),
            crossing_share(seg, right_total, right_pieces, "right", word=word))


def function_edge(seg, word):
    """'' or 'phrase:first:TAG' / 'phrase:last:TAG' from jieba's segmentation of `word`."""
    pieces = seg.cut(word)
    if len(pieces) < 2:
        return ""
    seg.load_tags(pieces)
    first, last = seg.tag(pieces[0]), seg.tag(pieces[-1])
    if first in FIRST_TAGS:
        return "phrase:first:" + first
    if pieces[0] in FIRST_NUMERALS:
        return "phrase:first:numeral"
    if pieces[-1] in LOCALIZERS:
        return "phrase:last:localizer"
    if len(pieces) == 2 and len(word) == 2 and first in ABBREVIATION_TAGS and last in ABBREVIATION_TAGS:
        return "phrase:abbreviations"
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
