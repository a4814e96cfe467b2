"""Extending a WordPiece vocab with new words, to continue pre-training a checkpoint on a new domain.

    extension = extend_vocab("chinese_L-12_H-768_A-12/vocab.txt", ["新冠肺炎", "核酸检测"], "runs/zh/vocab")

New words take the `[unused*]` slots first (Google's vocabs keep 99 to 994 of them for
this), in id order, then are appended, so every old piece keeps its id. A word already
in the vocab is left out. Each new word records the ids of the pieces the old vocab
split it into: `hvd-pretrain --init_from` starts the word's embedding row (and its MLM
output bias) as the mean of those pieces' rows, and keeps every other row bit-identical
(see `resize_rows`).

The BERT pre-tokenizer puts each CJK character (and each punctuation mark) in a word of
its own, so a multi-character Chinese word in vocab.txt alone would never be produced.
Such words are also listed in tokenizer.json ("added_words") and the tokenizer matches
them in the raw text before pre-tokenization, longest first, wherever they occur (as
HF `tokenizers`' added tokens, matched case-sensitively); other new words are ordinary
WordPiece pieces, found by its longest-match-first rule.

Written to the output directory: vocab.txt, tokenizer.json (lower-casing, accents,
added words) and vocab_extension.json: base_vocab, base_size, size, slots_filled,
appended, base_fingerprint, words [{word, id, slot, pieces: [ids in the old vocab]}].
"""

import json
import os
import re

import numpy as np

from hvd_pretrain.errors import DataError
from hvd_pretrain.rundir import write_json_atomic, write_text_atomic

EXTENSION_JSON = "vocab_extension.json"
UNUSED = re.compile(r"^\[unused\d+\]$")


def read_user_words(path):
    """Words of a user dictionary: the first whitespace-separated field of each line (jieba's
    `word [freq] [tag]` format, or one word per line); blank lines and '#' comments skipped."""
    if not os.path.isfile(path):
        raise DataError("--add_words=%s not found; pass a file with one word per line (jieba's userdict.txt works)"
                        % path)
    words = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if fields and not fields[0].startswith("#"):
                    words.append(fields[0])
    except UnicodeDecodeError:
        raise DataError("--add_words=%s is not UTF-8 text" % path) from None
    return words


def needs_added_word(tokenizer, word):
    """True when the BERT normalizer + pre-tokenizer would split `word` (a multi-character CJK word, or one
    holding punctuation), so that only an added word can make it one token."""
    normalized = tokenizer.hf.normalizer.normalize_str(word)
    return len(tokenizer.hf.pre_tokenizer.pre_tokenize_str(normalized)) > 1


def extend_vocab(base, words, out_dir):
    """Write the extended vocab to `out_dir`; return the vocab_extension.json dict.

    base: a vocab dir holding vocab.txt, or a vocab.txt. words: candidate new words, in order of
    preference (duplicates and words already in the vocab are skipped). DataError for a
    SentencePiece vocab, a missing vocab, or no new word.
    """
    from hvd_pretrain.vocab.tokenizer import load_tokenizer, resolve_vocab

    kind, base_path = resolve_vocab(base)
    if kind != "wordpiece":
        raise DataError("--extend=%s is a SentencePiece vocab; extension takes a WordPiece vocab.txt (BERT's)" % base)
    old = load_tokenizer(base)
    pieces = [old.id_to_piece(i) for i in range(old.vocab_size)]
    known = set(pieces)
    new_words, seen = [], set()
    for word in words:
        # the form the tokenizer sees: lower-cased and accent-stripped as the vocab is
        word = old._normalizer_for_segmenter.normalize_str(word.strip())
        if word and word not in seen and word not in known:
            seen.add(word)
            new_words.append(word)
    if not new_words:
        raise DataError("no new word to add: every word given is already in %s (or none was given)" % base_path)
    slots = [i for i, p in enumerate(pieces) if UNUSED.match(p)]
    entries, added_words = [], []
    for k, word in enumerate(new_words):
        split = [int(i) for i in old.encode(word)]
        if k < len(slots):
            new_id, slot = slots[k], pieces[slots[k]]
            pieces[new_id] = word
        else:
            new_id, slot = len(pieces), None
            pieces.append(word)
        entries.append({"word": word, "id": new_id, "slot": slot, "pieces": split})
        if needs_added_word(old, word):
            added_words.append(word)
    os.makedirs(out_dir, exist_ok=True)
    if os.path.isfile(os.path.join(out_dir, "spm.model")):
        raise DataError("--out=%s holds a SentencePiece spm.model, which would be loaded instead; choose another"
                        " --out" % out_dir)
    write_text_atomic(os.path.join(out_dir, "vocab.txt"), "".join(p + "\n" for p in pieces))
    write_json_atomic(os.path.join(out_dir, "tokenizer.json"),
                      {"kind": "wordpiece", "do_lower_case": old.do_lower_case, "strip_accents": old.strip_accents,
                       "added_words": sorted(set(old.added_words) | set(added_words))})
    extension = {"base_vocab": os.path.abspath(base_path), "base_fingerprint": old.fingerprint,
                 "base_size": old.vocab_size, "size": len(pieces),
                 "slots_filled": min(len(slots), len(entries)), "appended": max(0, len(entries) - len(slots)),
                 "unused_left": max(0, len(slots) - len(entries)), "added_words": len(added_words),
                 "words": entries}
    write_json_atomic(os.path.join(out_dir, EXTENSION_JSON), extension)
    return extension


def words_split_by(tokenizer, lines, top, min_count=2, max_chars=8):
    """The `top` most frequent words of `lines` that `tokenizer` splits into several tokens.

    Words come from jieba's segmentation (a space-free script) and from whitespace; a word is a
    candidate when it has 2..max_chars characters, holds a letter or CJK character, and is not
    one token. Returns [(word, count)], most frequent first (ties: first seen).
    """
    import collections
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    segmenter = jieba.Tokenizer()
    counts = collections.Counter()
    for line in lines:
        for word in segmenter.lcut(line):
            word = word.strip()
            if 2 <= len(word) <= max_chars and any(c.isalpha() for c in word):
                counts[word] += 1
    out = []
    for word, count in counts.most_common():
        if count < min_count or len(out) >= top:
            break
        if len(tokenizer.encode(word)) > 1:
            out.append((word, count))
    return out


def read_extension(vocab_dir):
    """vocab_extension.json of a vocab dir (or of the dir of a vocab.txt), or None."""
    directory = vocab_dir if os.path.isdir(vocab_dir) else os.path.dirname(vocab_dir)
    path = os.path.join(directory, EXTENSION_JSON)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resize_rows(old, extension):
    """An [base_size, ...] array (embedding rows, or an output bias) -> [size, ...] for the extended vocab.

    Rows of old pieces are copied bit for bit; a new word's row is the float32 mean of the
    rows of the pieces the old vocab split it into (an [unused*] slot it takes is overwritten).
    """
    old = np.asarray(old)
    if old.shape[0] != extension["base_size"]:
        raise DataError("a tensor has %d rows but the vocab extension starts from %d pieces"
                        % (old.shape[0], extension["base_size"]))
    out = np.zeros((extension["size"],) + old.shape[1:], dtype=old.dtype)
    out[:old.shape[0]] = old
    for entry in extension["words"]:
        pieces = entry["pieces"] or [0]
        out[entry["id"]] = old[pieces].astype(np.float32).mean(axis=0).astype(old.dtype)
    return out


def extends(vocab_dir, base_vocab):
    """True when `vocab_dir` was made by extending `base_vocab` (same content and settings)."""
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    extension = read_extension(vocab_dir) if vocab_dir and os.path.exists(vocab_dir) else None
    if not extension:
        return False
    try:
        return load_tokenizer(base_vocab).fingerprint == extension.get("base_fingerprint")
    except DataError:
        return False
