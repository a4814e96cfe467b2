"""Train a SentencePiece vocab for pre-training: [CLS] [SEP] [MASK] control symbols and a pad id.

Ids 0..4 are fixed: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 (the layout of
ALBERT's released SentencePiece models), then any user-defined symbols, then
the learnt pieces. Padding with 0 therefore matches google-research/bert's
TFRecords.

Large corpora train in bounded memory: SentencePiece keeps a uniform random
sample of `input_sentence_size` sentences (reservoir sampling), seeded, so
the result is reproducible for the same input, seed and num_threads (the
unigram trainer's parallel sums depend on the thread count).
"""

import io
import os
import re

from hvd_pretrain.errors import DataError
from hvd_pretrain.inputs import corpus_lines, inspect_inputs
from hvd_pretrain.textio import expand_input_files, is_blank
from hvd_pretrain.rundir import write_bytes_atomic

CONTROL_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")
PAD_PIECE, UNK_PIECE = "[PAD]", "[UNK]"
MODEL_TYPES = ("unigram", "bpe")
CJK_COVERAGE, DEFAULT_COVERAGE = 0.9995, 1.0
CJK_THRESHOLD = 0.3
MIN_COVERAGE, MAX_THREADS = 0.98, 1024  # the bounds SentencePiece's trainer accepts
SNIFF_CHARS = 1 << 20


def is_cjk(ch):
    code = ord(ch)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0xF900 <= code <= 0xFAFF or 0x3040 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7AF)


def cjk_fraction(files, max_chars=SNIFF_CHARS, reading=None):
    """Share of CJK characters among the letters of the first `max_chars` characters of the input."""
    letters = cjk = 0
    budget = max_chars
    for line in corpus_lines(inspect_inputs(files, reading), reading):
        text = line.decode("utf-8", errors="ignore")[:budget]
        budget -= len(text) + 1
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += is_cjk(ch)
        if budget <= 0:
            break
    return cjk / letters if letters else 0.0


def default_character_coverage(files, reading=None):
    """0.9995 for a CJK-heavy corpus (so rare characters become [UNK] and not pieces), else 1.0."""
    return CJK_COVERAGE if cjk_fraction(files, reading=reading) >= CJK_THRESHOLD else DEFAULT_COVERAGE


def train_sentencepiece(input_files, out_dir, vocab_size, model_type="unigram", character_coverage=None,
                        input_sentence_size=2_000_000, num_threads=None, user_defined_symbols=(),
                        seed=12345, sentence_iterator=None, max_sentence_length=4192, reading=None):
    """Train spm.model / spm.vocab in `out_dir` and return the path of spm.model.

    character_coverage None means: detect (0.9995 when CJK-heavy, else 1.0).
    sentence_iterator, when given, replaces reading `input_files` (used to hold lines out).
    reading: the InputConfig of the files. They are read by `hvd_pretrain.inputs` (every
    format, one sentence per line) and handed to SentencePiece line by line, so the same
    sentences give the same model whatever format they came in.
    """
    import sentencepiece as spm
    from hvd_pretrain.vocab.coverage import training_lines

    files = expand_input_files(input_files)
    inspect_inputs(files, reading)
    if model_type not in MODEL_TYPES:
        raise DataError("--model_type=%s is not supported; choose one of %s" % (model_type, ", ".join(MODEL_TYPES)))
    user_defined_symbols = [s for s in (user_defined_symbols or []) if s]
    reserved = 2 + len(CONTROL_SYMBOLS) + len(user_defined_symbols)
    if int(vocab_size) <= reserved + 10:
        raise DataError("--vocab_size=%s is too small; it must exceed %d (special symbols + a few pieces)"
                        % (vocab_size, reserved + 10))
    for symbol in user_defined_symbols:
        if symbol in CONTROL_SYMBOLS or symbol in (PAD_PIECE, UNK_PIECE):
            raise DataError("--user_defined_symbols: %s is already a special symbol; remove it" % symbol)
        if user_defined_symbols.count(symbol) > 1:
            raise DataError("--user_defined_symbols lists %s more than once; list each symbol once" % symbol)
    if int(max_sentence_length) <= 0:
        raise DataError("--max_sentence_length=%s must be a positive number of bytes" % max_sentence_length)
    if num_threads is not None and int(num_threads) < 0:
        raise DataError("--num_threads=%s must be 0 (all cores) or a positive number" % num_threads)
    if int(input_sentence_size) < 0:
        raise DataError("--input_sentence_size=%s must be 0 (every line) or a positive number of lines"
                        % input_sentence_size)
    if character_coverage is None:
        character_coverage = default_character_coverage(files, reading)
    if not MIN_COVERAGE <= float(character_coverage) <= 1.0:
        raise DataError("--character_coverage=%g is out of range; SentencePiece takes %g to 1.0 (-1: detect)"
                        % (character_coverage, MIN_COVERAGE))
    options = dict(
        model_type=model_type, vocab_size=int(vocab_size), character_coverage=float(character_coverage),
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece=PAD_PIECE, unk_piece=UNK_PIECE,
        control_symbols=list(CONTROL_SYMBOLS), user_defined_symbols=user_defined_symbols,
        input_sentence_size=int(input_sentence_size), shuffle_input_sentence=True,
        num_threads=min(MAX_THREADS, int(num_threads or os.cpu_count() or 1)),
        max_sentence_length=int(max_sentence_length),
        minloglevel=2,
    )
    if sentence_iterator is None:
        sentence_iterator = training_lines(files, 0, max_line_bytes=int(max_sentence_length), reading=reading)
    options["sentence_iterator"] = sentence_iterator
    spm.set_random_generator_seed(int(seed))
    model = io.BytesIO()  # in memory: no temporary path ends up inside the model, so it hashes reproducibly
    try:
        spm.SentencePieceTrainer.train(model_writer=model, **options)
    except (RuntimeError, ValueError) as e:
        message = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise DataError("SentencePiece training failed on %s: %s"
                        % (_names(files), explain_training_error(message, files, vocab_size, max_sentence_length,
                                                                 character_coverage, reading))) from None
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab_lines = "".join("%s\t%g\n" % (processor.id_to_piece(i), processor.get_score(i))
                          for i in range(processor.get_piece_size()))
    # Nothing is written before training succeeds; spm.model, the file a rerun trusts, comes last.
    os.makedirs(out_dir, exist_ok=True)
    write_bytes_atomic(os.path.join(out_dir, "spm.vocab"), vocab_lines.encode("utf-8"))
    write_bytes_atomic(os.path.join(out_dir, "spm.model"), model.getvalue())
    return os.path.join(out_dir, "spm.model")


_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def explain_training_error(message, files, vocab_size, max_sentence_length, character_coverage, reading=None):
    """What to change, in one line, for the SentencePiece trainer errors a user's input can cause;
    SentencePiece's own last line for any other."""
    match = _TOO_HIGH.search(message)
    if match:
        return ("--vocab_size=%s is larger than this text allows (maximum %s): lower --vocab_size to at most %s "
                "or give more text" % (vocab_size, match.group(2), match.group(2)))
    match = _TOO_SMALL.search(message)
    if match:
        return ("--vocab_size=%s is too small for the %s characters and symbols this text needs at "
                "--character_coverage=%g: raise --vocab_size to at least %s or lower --character_coverage"
                % (vocab_size, match.group(2), character_coverage, match.group(2)))
    if "sentences_.empty()" in message:
        usable, too_long = _count_lines(files, max_sentence_length, reading)
        if too_long:
            return ("no line is usable: %d of %d non-blank lines are longer than --max_sentence_length=%d bytes "
                    "(SentencePiece skips them): split the text into shorter lines (one sentence per line) or raise "
                    "--max_sentence_length" % (too_long, usable + too_long, max_sentence_length))
        return "no line is usable (every line is blank or held out): give more text"
    return message


def _count_lines(files, max_sentence_length, reading=None):
    """(non-blank lines of at most max_sentence_length bytes, longer ones) over the files."""
    usable = too_long = 0
    for raw in corpus_lines(inspect_inputs(files, reading), reading):
        if is_blank(raw):
            continue
        if len(raw) > max_sentence_length:
            too_long += 1
        else:
            usable += 1
    return usable, too_long


def _names(files, shown=3):
    return ",".join(files[:shown]) + (" and %d more" % (len(files) - shown) if len(files) > shown else "")
