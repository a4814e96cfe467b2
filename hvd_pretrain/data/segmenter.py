"""Word boundaries for Chinese whole-word masking, from the jieba segmenter (with a user dictionary).

Chinese text has no spaces, so a tokenizer cannot tell where words start. jieba
segments each sentence; a token starts a word when its first character starts
a jieba word. The segmenter is built once per process (its dictionary takes
about a second to load), never once per line.
"""

import logging
import os

from hvd_pretrain.data.errors import DataError


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

    def words(self, text):
        return [word for word, _, _ in self.tokenizer.tokenize(text)]
