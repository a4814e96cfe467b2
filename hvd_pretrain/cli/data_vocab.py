"""hvd-data vocab: train a SentencePiece or WordPiece vocab (or adopt a WordPiece vocab.txt) and report its
coverage.

    hvd-data vocab --out=runs/x/vocab --vocab_size=8000                  # the embedded corpus
    hvd-data vocab --input_files='corpus/*.txt' --out=vocab --vocab_size=32000 --model_type=bpe
    hvd-data vocab --input_files='corpus/*.txt' --out=vocab --vocab_size=21128 --model_type=wordpiece
    hvd-data vocab --wordpiece_vocab=uncased_L-12_H-768_A-12/vocab.txt --out=vocab
    hvd-data vocab --wordpiece_vocab=vocab.txt --do_lower_case=true --strip_accents=false --out=vocab
    hvd-data vocab --extend=chinese_L-12_H-768_A-12 --add_words=userdict.txt --input_files=zh.txt --out=vocab_ext

A WordPiece vocab's lower-casing and accent stripping are set apart (as HF
`tokenizers`' BertNormalizer does): by default a vocab without capitals is
lower-cased, and accents are stripped unless the vocab holds accented pieces.
The choice is written to tokenizer.json, which hvd-data create and the trainer
read back. A trained WordPiece vocab (--model_type=wordpiece, see
hvd_pretrain/vocab/wordpiece_trainer.py) is lower-cased unless --do_lower_case=false,
and accents are stripped when lower-casing unless --strip_accents says otherwise.

The input is read by hvd_pretrain.inputs: compressed text, JSON Lines and Parquet too
(--input_format, --text_field, --text_column, --document_format, --split_sentences).
Every --heldout_every-th line (sentence) is held out of training and used to report the
unknown-token rate and tokens per word (vocab_report.json in --out).
"""

import json
import os
import shutil
import sys
import time

from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.inputs import InputConfig
from hvd_pretrain.cli.entry import entry


def define_flags(fv):
    flags.DEFINE_string("input_files", "", "Corpus files (comma-separated, globs allowed): text, JSON Lines or "
                        "Parquet, compressed or not. Default: the embedded corpus.", flag_values=fv)
    flags.DEFINE_string("out", None, "Output dir for spm.model and spm.vocab (or vocab.txt and tokenizer.json), "
                        "and vocab_report.json.", flag_values=fv)
    flags.DEFINE_integer("vocab_size", 8000, "Vocab size, special symbols included.", flag_values=fv)
    flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe", "wordpiece"], "unigram or bpe: SentencePiece; "
                      "wordpiece: a BERT-style vocab.txt (HF tokenizers' WordPiece trainer).", flag_values=fv)
    flags.DEFINE_integer("wordpiece_unused", 100, "--model_type=wordpiece: [unused*] slots after the special "
                         "symbols, counted in --vocab_size (room for words added later).", flag_values=fv)
    flags.DEFINE_float("character_coverage", -1.0, "Characters covered; -1: 0.9995 for CJK-heavy text, else 1.0.",
                       flag_values=fv)
    flags.DEFINE_integer("input_sentence_size", 2_000_000, "Sentences sampled (shuffled) for training; bounds "
                         "memory on large corpora.", flag_values=fv)
    flags.DEFINE_integer("num_threads", 0, "Training threads (0: all cores).", flag_values=fv)
    flags.DEFINE_list("user_defined_symbols", [], "Extra symbols kept whole, e.g. <url>,<email>.", flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Sampling seed.", flag_values=fv)
    flags.DEFINE_integer("heldout_every", 100, "Hold out every N-th line for the coverage report (0: none).",
                         flag_values=fv)
    flags.DEFINE_integer("heldout_max", 5000, "At most this many held-out lines.", flag_values=fv)
    flags.DEFINE_string("wordpiece_vocab", "", "Use this BERT WordPiece vocab.txt instead of training.",
                        flag_values=fv)
    flags.DEFINE_enum("do_lower_case", "auto", ["auto", "true", "false"], "WordPiece lower-casing (auto: from the "
                      "vocab, uncased vocabs have no capitals; a trained WordPiece vocab: true).", flag_values=fv)
    flags.DEFINE_enum("strip_accents", "auto", ["auto", "true", "false"], "WordPiece accent stripping, apart from "
                      "lower-casing (auto: strip when lower-casing, unless the vocab holds accented pieces).",
                      flag_values=fv)
    flags.DEFINE_string("extend", "", "Extend this WordPiece vocab (a dir or its vocab.txt) with new words instead "
                        "of training: [unused*] slots first, then appended; old pieces keep their ids.",
                        flag_values=fv)
    flags.DEFINE_string("add_words", "", "--extend: file of new words, one per line (jieba's userdict.txt works, "
                        "e.g. the one hvd-data newwords writes).", flag_values=fv)
    flags.DEFINE_integer("add_from_corpus", 0, "--extend: add the N most frequent words of --input_files (jieba's "
                         "words, 2-8 characters, seen twice or more) that the vocab splits.", flag_values=fv)
    flags.DEFINE_integer("max_sentence_length", 4192, "SentencePiece skips training lines longer than this many "
                         "bytes.", flag_values=fv)
    options.define(InputConfig, fv)


@entry
def main(argv):
    fv, code = parse_flags(define_flags, argv)
    if code is not None:
        return code
    report = run(fv)
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def run(fv):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.inputs import inspect_inputs
    from hvd_pretrain.textio import expand_input_files
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.rundir import write_json_atomic
    from hvd_pretrain.vocab import coverage_report, default_character_coverage, load_tokenizer, train_sentencepiece
    from hvd_pretrain.vocab.coverage import held_out_lines, training_lines
    from hvd_pretrain.vocab.wordpiece_trainer import train_wordpiece

    if not fv.out:
        raise DataError("--out is required: the directory for the vocab")
    reading = InputConfig(**options.read(InputConfig, fv, {f.name for f, _, _ in InputConfig.options()})).validate()
    files = expand_input_files(fv.input_files or default_corpus())
    infos = inspect_inputs(files, reading)
    started = time.time()
    wordpiece = fv.model_type == "wordpiece"
    for name in ("do_lower_case", "strip_accents"):
        if getattr(fv, name) != "auto" and not (fv.wordpiece_vocab or wordpiece):
            raise DataError("--%s applies to a WordPiece vocab; pass --wordpiece_vocab or --model_type=wordpiece too, "
                            "or drop it (a trained SentencePiece vocab keeps case and accents)" % name)
    if fv.extend:
        return _extend(fv, files, started)
    if fv.add_words or fv.add_from_corpus:
        raise DataError("--add_words and --add_from_corpus name words to add to a vocab; pass --extend=VOCAB too")
    if wordpiece and fv.wordpiece_vocab:
        raise DataError("--model_type=wordpiece trains a vocab and --wordpiece_vocab adopts one; pass only one")
    choice = {"auto": None, "true": True, "false": False}
    every = fv.heldout_every if fv.heldout_every and fv.heldout_every > 1 else 0
    if wordpiece:
        if os.path.isfile(os.path.join(fv.out, "spm.model")):
            raise DataError("--out=%s already holds a SentencePiece spm.model, which would be loaded instead; "
                            "choose another --out" % fv.out)
        lower = choice[fv.do_lower_case] if fv.do_lower_case != "auto" else True
        train_wordpiece(files, fv.out, fv.vocab_size, do_lower_case=lower, strip_accents=choice[fv.strip_accents],
                        unused=fv.wordpiece_unused,
                        lines=training_lines(files, every, max_line_bytes=fv.max_sentence_length, reading=reading),
                        reading=reading)
        tokenizer = load_tokenizer(fv.out)
        heldout = held_out_lines(files, every, fv.heldout_max, reading) if every else []
    elif fv.wordpiece_vocab:
        if not os.path.isfile(fv.wordpiece_vocab):
            raise DataError("--wordpiece_vocab=%s not found" % fv.wordpiece_vocab)
        os.makedirs(fv.out, exist_ok=True)
        target = os.path.join(fv.out, "vocab.txt")
        if os.path.abspath(fv.wordpiece_vocab) != os.path.abspath(target):
            shutil.copyfile(fv.wordpiece_vocab, target)
        tokenizer = load_tokenizer(target, do_lower_case=choice[fv.do_lower_case],
                                   strip_accents=choice[fv.strip_accents])
        write_json_atomic(os.path.join(fv.out, "tokenizer.json"),
                          {"kind": "wordpiece", "do_lower_case": tokenizer.do_lower_case,
                           "strip_accents": tokenizer.strip_accents})
        if tokenizer.do_lower_case and not tokenizer.strip_accents and fv.strip_accents == "auto":
            print("note: %s is lower-case and holds accented pieces: accents are kept (--strip_accents=true "
                  "strips them)" % fv.wordpiece_vocab, file=sys.stderr)
        heldout = held_out_lines(files, max(1, fv.heldout_every or 1), fv.heldout_max, reading)
    else:
        iterator = (training_lines(files, every, max_line_bytes=fv.max_sentence_length, reading=reading)
                    if every else None)
        coverage = default_character_coverage(files, reading) if fv.character_coverage < 0 else fv.character_coverage
        train_sentencepiece(files, fv.out, fv.vocab_size, model_type=fv.model_type, character_coverage=coverage,
                            input_sentence_size=fv.input_sentence_size, num_threads=fv.num_threads or None,
                            user_defined_symbols=fv.user_defined_symbols, seed=fv.seed, sentence_iterator=iterator,
                            max_sentence_length=fv.max_sentence_length, reading=reading)
        tokenizer = load_tokenizer(fv.out)
        heldout = held_out_lines(files, every, fv.heldout_max, reading) if every else []
    report = {"vocab": tokenizer.describe(), "input_files": files, "seconds": round(time.time() - started, 3),
              "input_formats": [info.as_dict() for info in infos], "reading": reading.to_dict(),
              "heldout": coverage_report(tokenizer, heldout) if heldout else None}
    if wordpiece:
        report["training"] = {"model_type": "wordpiece", "vocab_size": fv.vocab_size,
                              "unused": fv.wordpiece_unused, "max_sentence_length": fv.max_sentence_length}
    elif not fv.wordpiece_vocab:
        report["training"] = {"model_type": fv.model_type, "vocab_size": fv.vocab_size,
                              "input_sentence_size": fv.input_sentence_size, "seed": fv.seed,
                              "character_coverage": coverage, "max_sentence_length": fv.max_sentence_length}
    write_json_atomic(os.path.join(fv.out, "vocab_report.json"), report)
    return report


def _extend(fv, files, started):
    """hvd-data vocab --extend: the extended vocab, its vocab_extension.json and vocab_report.json."""
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.rundir import write_json_atomic
    from hvd_pretrain.vocab import coverage_report, load_tokenizer
    from hvd_pretrain.vocab.coverage import held_out_lines, training_lines
    from hvd_pretrain.vocab.extend import extend_vocab, read_user_words, words_split_by

    if fv.wordpiece_vocab or fv.model_type == "wordpiece":
        raise DataError("--extend adds words to an existing vocab; drop --wordpiece_vocab / --model_type=wordpiece")
    if not fv.add_words and fv.add_from_corpus <= 0:
        raise DataError("--extend needs words: --add_words=FILE and/or --add_from_corpus=N")
    base = load_tokenizer(fv.extend)
    words = read_user_words(fv.add_words) if fv.add_words else []
    corpus_words = []
    if fv.add_from_corpus > 0:
        corpus_words = words_split_by(base, training_lines(files, 0, max_line_bytes=fv.max_sentence_length),
                                      fv.add_from_corpus)
        words += [w for w, _ in corpus_words]
    heldout = held_out_lines(files, max(1, fv.heldout_every or 1), fv.heldout_max)
    before = coverage_report(base, heldout) if heldout else None
    extension = extend_vocab(fv.extend, words, fv.out)
    tokenizer = load_tokenizer(fv.out)
    summary = {k: extension[k] for k in ("base_vocab", "base_size", "size", "slots_filled", "appended", "unused_left",
                                         "added_words")}
    summary["words_given"] = len(words)
    summary["words_added"] = len(extension["words"])
    summary["from_corpus"] = [{"word": w, "count": c} for w, c in corpus_words[:50]]
    report = {"vocab": tokenizer.describe(), "input_files": files, "seconds": round(time.time() - started, 3),
              "heldout": coverage_report(tokenizer, heldout) if heldout else None, "heldout_before": before,
              "extension": summary}
    write_json_atomic(os.path.join(fv.out, "vocab_report.json"), report)
    return report
