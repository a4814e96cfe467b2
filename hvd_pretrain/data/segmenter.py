"""Word boundaries for Chinese whole-word masking: jieba (with a user dictionary), pkuseg, or any callable.

Chinese text has no spaces, so a tokenizer cannot tell where words start. The
segmenter cuts each sentence as the tokenizer sees it (after normalization, so
that a character that normalizes to several tokens, such as "㎏" -> "kg", is one
word part and not several word starts); a token starts a word when its first
character starts a segmenter word. A segmenter is built once per process (a
dictionary or model takes a second or more to load), never once per line; see
`load_segmenter`. Reference files (`--segmenter=ref_file`) are in reference_file.py.
"""

import importlib
import logging
import os
import re

import numpy as np

from hvd_pretrain.errors import DataError

BUILTIN = ("jieba", "pkuseg", "ref_file")
CALLABLE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # MODULE:FUNCTION
PKUSEG_INSTALL = "pip install spacy-pkuseg (or: pip install 'hvd-pretrain[chinese]')"
_LOADED = {}  # this process's segmenters, by what defines them


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


class WordListSegmenter:
    """A segmenter from a function that cuts a string into its words (a list of strings).

    The words must be the text's own characters, in order; whitespace between them may be
    left out (most segmenters drop it). A word that does not continue the text where the
    previous one ended is a DataError: such a function changes the text rather than cut it.
    """

    def __init__(self, cut, name):
        self.cut, self.name = cut, name

    def words(self, text):
        words = self.cut(text)
        if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__"):
            raise DataError("--segmenter=%s returned %s, not a list of words; it must take a string and return a"
                            " list of strings" % (self.name, type(words).__name__))
        words = list(words)
        for word in words:
            if not isinstance(word, str):
                raise DataError("--segmenter=%s returned a list holding %s (%r), not only strings; it must return"
                                " a list of strings" % (self.name, type(word).__name__, word))
        return words

    def word_start_offsets(self, text):
        """Character offsets at which the segmenter's words start."""
        starts, pos = set(), 0
        for word in self.words(text):
            while pos < len(text) and text[pos].isspace() and not text.startswith(word, pos):
                pos += 1
            if not word.strip():
                pos += len(word) if text.startswith(word, pos) else 0
                continue
            if not text.startswith(word, pos):
                raise DataError("--segmenter=%s cut %r into words that are not its characters in order (%r at"
                                " offset %d); it must cut the text, not change it" % (self.name, text, word, pos))
            starts.add(pos)
            pos += len(word)
        return starts

    def token_word_starts(self, text, token_starts, inside=None):
        """Per token, True when it starts a word of `text`; see `token_word_starts`."""
        return token_word_starts(text, token_starts, self.word_start_offsets(text), inside)


def callable_segmenter(spec):
    """The WordListSegmenter of `MODULE:FUNCTION` (imported now; DataError when that fails)."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any failure to import is the user's to fix
        raise DataError("--segmenter=%s: cannot import module %s (%s: %s); put it on PYTHONPATH"
                        % (spec, module_name, type(e).__name__, e)) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DataError("--segmenter=%s: module %s has no function %s; pass MODULE:FUNCTION of a callable taking"
                        " a string and returning a list of words" % (spec, module_name, function_name))
    segmenter = WordListSegmenter(function, spec)
    segmenter.words("中文分词")  # the return type is checked now, before any worker starts
    return segmenter


def pkuseg_segmenter(model="", user_dict=""):
    """A WordListSegmenter of pkuseg (the spacy-pkuseg package, else pkuseg), with `model` (a directory of
    a trained model, or a name pkuseg knows and fetches on first use; "": its default) and an optional
    user dictionary (one word per line)."""
    try:
        import spacy_pkuseg as pkuseg
    except ImportError:
        try:
            import pkuseg
        except ImportError:
            raise DataError("--segmenter=pkuseg needs the pkuseg segmenter, which is not installed: "
                            + PKUSEG_INSTALL) from None
    if user_dict and not os.path.isfile(user_dict):
        raise DataError("--wwm_dict=%s not found; pass a user dictionary (one word per line)" % user_dict)
    if model and os.path.sep in model and not os.path.isdir(model):
        raise DataError("--pkuseg_model=%s is not a directory; pass a trained pkuseg model's directory or a model"
                        " name" % model)
    try:
        kwargs = {"model_name": model} if model else {}
        model_object = pkuseg.pkuseg(user_dict=user_dict or "default", **kwargs)
    except Exception as e:  # noqa: BLE001 - a missing model surfaces as OSError, requests' or zipfile's errors
        raise DataError("--segmenter=pkuseg could not load its model %s (%s: %s); give --pkuseg_model a directory"
                        " holding a pkuseg model, or fetch the named one once with network access"
                        % (model or "(default)", type(e).__name__, str(e)[:160])) from None
    return WordListSegmenter(model_object.cut, "pkuseg")


def load_segmenter(config, input_files=()):
    """This process's segmenter for `config` (a DataConfig), built on first use and kept; None for "none".

    input_files: the input files in the order they are read (ref_file aligns its lines with them).
    Raises DataError when the segmenter cannot be built (a missing package, module or file).
    """
    kind = config.segmenter
    if kind == "none":
        return None
    key = (kind, config.wwm_dict, config.pkuseg_model, config.ref_file, tuple(input_files))
    if key not in _LOADED:
        if kind == "jieba":
            segmenter = JiebaSegmenter(config.wwm_dict)
        elif kind == "pkuseg":
            segmenter = pkuseg_segmenter(config.pkuseg_model, config.wwm_dict)
        elif kind == "ref_file":
            from hvd_pretrain.data.reference_file import ReferenceFile

            segmenter = ReferenceFile(config.ref_file, list(input_files))
        else:
            segmenter = callable_segmenter(kind)
        _LOADED[key] = segmenter
    return _LOADED[key]


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
