"""Sentence splitting of raw documents: English, Chinese, or chosen per document.

    none  the text is already one sentence per line; nothing is split.
    en    English (and other space-separated Latin-script text) through `sentencex`
          (Wikimedia's rule-based segmenter: abbreviations, initials, decimals and quotes
          are kept together; compiled rules, nothing is downloaded at run time).
    zh    Chinese: a sentence ends after 。！？；… (or ASCII ! ? ;, or "..."), and the closing
          quotes and brackets right after the mark stay with it: 他说：“好。”|然后走了！
    auto  per document: zh when at least `CJK_SHARE` of its letters are CJK ideographs
          or kana/hangul, else en.

Every sentence is stripped (str.strip()); empty ones are dropped. Output sentences
never hold a newline.
"""

import re

MODES = ("none", "auto", "en", "zh")
CJK_SHARE = 0.3

_ZH_END = re.compile(r"""(?:[。！？；!?;]+|…+|\.{3,})[”’"'」』）)\]】》〉〕〗〙〛]*""")


def is_cjk(ch):
    """CJK ideographs, kana and hangul syllables (the scripts written without spaces between words)."""
    code = ord(ch)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0xF900 <= code <= 0xFAFF or 0x3040 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7AF)


def cjk_share(text):
    """Share of CJK characters among the letters of `text` (0.0 for text without letters)."""
    letters = cjk = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            cjk += is_cjk(ch)
    return cjk / letters if letters else 0.0


def language(text):
    """'zh' or 'en': the splitter `auto` uses for this document."""
    return "zh" if cjk_share(text) >= CJK_SHARE else "en"


def split_zh(text):
    """Chinese sentences of `text` (see the module docstring)."""
    sentences, start = [], 0
    for match in _ZH_END.finditer(text):
        sentences.append(text[start:match.end()])
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


def split_en(text):
    """English sentences of `text`, by sentencex."""
    from sentencex import segment

    return [s.strip() for s in segment("en", text) if s.strip()]


def join_lines(lines):
    """Lines of one paragraph as one text: a space between them, none where both sides are CJK."""
    text = ""
    for line in lines:
        if text and not (is_cjk(text[-1]) and is_cjk(line[0])):
            text += " "
        text += line
    return text


def split_sentences(paragraphs, mode, lang=None):
    """The sentences of a document given as paragraphs (each a str without newline), in order.

    mode: one of MODES. lang: the language `auto` chose for the whole document (computed
    from the paragraphs when None). `none` returns the stripped, non-empty paragraphs.
    """
    if mode == "none":
        return [p.strip() for p in paragraphs if p.strip()]
    if mode == "auto":
        mode = lang or language("".join(paragraphs))
    split = split_zh if mode == "zh" else split_en
    return [sentence for paragraph in paragraphs if paragraph.strip() for sentence in split(paragraph)]
