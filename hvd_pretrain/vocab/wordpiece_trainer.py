"""Train a BERT-style WordPiece vocab (vocab.txt) with HF `tokenizers`' WordPiece trainer.

The text goes through the pipeline `WordPieceTokenizer` applies when the vocab is used,
google-research/bert's FullTokenizer as HF `tokenizers` builds it: BertNormalizer
(clean text, a space around every CJK character so each one is a word of its own,
optional lower-casing, optional accent stripping, the two set apart), BertPreTokenizer
(whitespace and punctuation), then WordPiece pieces with the "##" continuation prefix.

vocab.txt starts with [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0..4; the order of Google's
vocabs, without the [unused*] block between [PAD] and [UNK]), then `unused` slots
[unused0] ... (room to add words later without resizing the embeddings), then the learnt
pieces: the characters first (at most `alphabet_share` of the free slots; rarer characters
become [UNK]), then merges.

The input is streamed line by line (any format `hvd_pretrain.inputs` reads): only the word counts (one entry per distinct
pre-tokenized word) are held in memory, never the corpus.
"""

import json
import os

from hvd_pretrain.errors import DataError
from hvd_pretrain.inputs import inspect_inputs
from hvd_pretrain.textio import expand_input_files
from hvd_pretrain.vocab.coverage import training_lines
from hvd_pretrain.vocab.tokenizer import MAX_WORD_CHARS, SPECIAL_PIECES, TOKENIZER_JSON, WORDPIECE_VOCAB
from hvd_pretrain.rundir import write_text_atomic

ALPHABET_SHARE = 0.5
MIN_LEARNT = 10  # the vocab must leave room for at least this many learnt pieces


def special_pieces(unused=0):
    """[PAD] [UNK] [CLS] [SEP] [MASK], then [unused0] .. [unused{unused-1}]."""
    return list(SPECIAL_PIECES) + ["[unused%d]" % i for i in range(int(unused))]


def train_wordpiece(input_files, out_dir, vocab_size, do_lower_case=True, strip_accents=None, unused=0,
                    min_frequency=2, alphabet_share=ALPHABET_SHARE, lines=None, reading=None):
    """Train vocab.txt and tokenizer.json in `out_dir`; return the path of vocab.txt.

    vocab_size: total pieces, special symbols and [unused*] slots included; the trainer
        may return fewer when the text has fewer distinct pieces (never more).
    do_lower_case, strip_accents: BertNormalizer's `lowercase` and `strip_accents`;
        strip_accents None follows do_lower_case (Google's uncased rule).
    unused: number of [unused*] slots after the special symbols.
    min_frequency: a merge must be seen at least this often.
    lines: an iterable of decoded lines replacing the files (used to hold lines out);
        by default `coverage.training_lines` streams every non-blank UTF-8 line.
    reading: the InputConfig of the files (format, text field, sentence splitting).
    Raises DataError for input or settings a user can fix.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    files = expand_input_files(input_files)
    inspect_inputs(files, reading)
    if int(unused) < 0:
        raise DataError("--wordpiece_unused=%s must be 0 or more" % unused)
    specials = special_pieces(unused)
    if int(vocab_size) < len(specials) + MIN_LEARNT:
        raise DataError("--vocab_size=%s is too small; it must be at least %d (%d special symbols and [unused*] "
                        "slots + %d pieces)" % (vocab_size, len(specials) + MIN_LEARNT, len(specials), MIN_LEARNT))
    if strip_accents is None:
        strip_accents = do_lower_case
    free = int(vocab_size) - len(specials)
    tokenizer = HFTokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##",
                                             max_input_chars_per_word=MAX_WORD_CHARS))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=bool(strip_accents), lowercase=bool(do_lower_case))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=int(vocab_size), min_frequency=int(min_frequency),
                                        special_tokens=specials, continuing_subword_prefix="##",
                                        limit_alphabet=max(1, int(free * alphabet_share)), show_progress=False)
    tokenizer.train_from_iterator(training_lines(files, 0, reading=reading) if lines is None else lines, trainer=trainer)
    vocab = tokenizer.get_vocab()
    pieces = [piece for piece, _ in sorted(vocab.items(), key=lambda item: item[1])]
    if pieces[:len(specials)] != specials:
        raise DataError("WordPiece training on %s did not put the special symbols first" % ",".join(files))
    if len(pieces) == len(specials):
        raise DataError("WordPiece training found no text in %s (every line blank, held out or not UTF-8); "
                        "give more text" % ",".join(files))
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(os.path.join(out_dir, TOKENIZER_JSON), json.dumps(
        {"kind": "wordpiece", "do_lower_case": bool(do_lower_case), "strip_accents": bool(strip_accents)}) + "\n")
    path = os.path.join(out_dir, WORDPIECE_VOCAB)
    write_text_atomic(path, "".join(piece + "\n" for piece in pieces))  # vocab.txt, the file a rerun trusts, last
    return path
