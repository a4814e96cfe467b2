"""Word boundaries for Chinese whole-word masking, from the jieba segmenter (with a user dictionary).

Chinese text has no spaces, so a tokenizer cannot tell where words start. jieba
segments each sentence as the tokenizer sees it (after normalization, so that a
character that normalizes to several tokens, such as "㎏" -> "kg", is one word
part and not several word starts); a token starts a word when its first
character starts a jieba word. The segmenter is built once per process (its
dictionary takes about a second to load), never once per line.
"""

import logging
import os

import numpy as np

from hvd_pretrain.errors import DataError


class JiebaSegmenter:
    loads = 0  # how many segmenters this process has built (one per worker is expected)

    def __init__(self, user_dict=""):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        if user_dict and not os.path.isfile(user_dict):
            raise DataError("--wwm_dict=%s not found; pass a jieba user dictionary (one word per line)" % user_dict)
        self.user_dict = user_dict
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()
        if user_dict:
            try:
                self.tokenizer.load_userdict(user_dict)
            except (ValueError, UnicodeDecodeError) as e:
                raise DataError("--wwm_dict=%s is not a jieba user dictionary: %s" % (user_dict, e)) from None
        JiebaSegmenter.loads += 1

    def word_start_offsets(self, text):
        """Character offsets at which jieba's words start."""
        return {start for _, start, _ in self.tokenizer.tokenize(text)}

    def token_word_starts(self, text, token_starts, inside=None):
        """Per token, True when it starts a jieba word of `text`; see `token_word_starts`."""
        return token_word_starts(text, token_starts, self.word_start_offsets(text), inside)

    def words(self, text):
        return [word for word, _, _ in self.tokenizer.tokenize(text)]


def token_word_starts(text, token_starts, word_starts, inside=None):
    """Per token, True when it starts a word of the segmenter.

    text: the normalized text the tokens were made from (`Tokenizer.encode_normalized`);
    token_starts: where each token starts in it (non-decreasing); word_starts: offsets in
    it where the segmenter's words start; inside: per token, True when it begins within
    the normalized form of one source character (such as the "2" of "½" -> "1⁄2").
    A token starts a word when its first non-space character does, except that a token
    inside one source character or sharing its start with the token before (bytes of
    one character) never does, and a whitespace-only token (a SentencePiece "▁") starts
    a word that the token after it continues. Returns a bool array, one per token.
    """
    count = len(token_starts)
    ends, following = [len(text)] * count, len(text)  # a token's text runs to the next larger start
    for i in range(count - 2, -1, -1):
        if token_starts[i + 1] > token_starts[i]:
            following = token_starts[i + 1]
        ends[i] = following
    flags = np.zeros(count, dtype=bool)
    after_space = False
    for i, start in enumerate(token_starts):
        piece = text[start:ends[i]]
        if (i and start == token_starts[i - 1]) or (inside is not None and inside[i]):
            flags[i] = False
        elif not piece.strip():
            flags[i], after_space = True, True
            continue
        elif after_space:
            flags[i] = False
        else:
            flags[i] = start + len(piece) - len(piece.lstrip()) in word_starts
        after_space = False
    return flags
