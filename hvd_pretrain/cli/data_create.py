"""hvd-data create: text -> masked pre-training instances -> TFRecord shards + manifest.json.

    hvd-data create --vocab=runs/x/vocab --out=runs/x/data                # the embedded corpus
    hvd-data create --input_files='corpus/*.txt' --vocab=vocab --out=data --num_workers=8 \\
        --whole_word_masking --ngram_max=3 --sentence_objective=sop
    hvd-data create --input_files=zh.txt --vocab=zh_vocab --out=zh_data --wwm_dict=newwords.txt

The records carry google-research/bert's features, so its run_pretraining.py
reads them (static masking). The output is the same for any --num_workers, and
an interrupted run can be rerun: finished shards are kept.
"""

import json
import os
import sys

from absl import flags

from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.cli.entry import entry


def define_flags(fv):
    d = flags
    d.DEFINE_string("input_files", "", "Text files (comma-separated, globs allowed): one sentence per line, a blank "
                    "line between documents. Default: the embedded corpus.", flag_values=fv)
    d.DEFINE_string("vocab", None, "Vocab dir (spm.model or vocab.txt), or a path to either.", flag_values=fv)
    d.DEFINE_string("out", None, "Output dir for the shards and manifest.json.", flag_values=fv)
    d.DEFINE_integer("max_seq_length", 128, "Tokens per sequence, [CLS]/[SEP] included.", flag_values=fv)
    d.DEFINE_integer("max_predictions_per_seq", 20, "At most this many masked positions per sequence.",
                     flag_values=fv)
    d.DEFINE_float("masked_lm_prob", 0.15, "Fraction of tokens masked.", flag_values=fv)
    d.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter target length.", flag_values=fv)
    d.DEFINE_integer("dupe_factor", 10, "Passes over the input, each with other splits and masks.", flag_values=fv)
    d.DEFINE_enum("sentence_objective", "nsp", ["nsp", "sop", "none"], "Sentence-pair objective: next sentence "
                  "(BERT), sentence order (ALBERT), or none (one segment).", flag_values=fv)
    d.DEFINE_integer("seed", 12345, "Random seed; the output depends on it and not on --num_workers.",
                     flag_values=fv)
    d.DEFINE_integer("num_shards", 0, "Output shards (0: one per ~32 MB of text, at least 8). Use at least the "
                     "number of training ranks.", flag_values=fv)
    d.DEFINE_integer("num_workers", 0, "Worker processes (0: all cores).", flag_values=fv)
    d.DEFINE_bool("whole_word_masking", False, "Mask all tokens of a word together.", flag_values=fv)
    d.DEFINE_integer("ngram_max", 1, "N-gram masking: spans of up to N words, p(n) ∝ 1/n (1: off).",
                     flag_values=fv)
    d.DEFINE_enum("masking", "static", ["static", "dynamic"], "static: mask now (Google's format); dynamic: store "
                  "unmasked, mask in the input pipeline every epoch.", flag_values=fv)
    d.DEFINE_enum("segmenter", "none", ["none", "jieba"], "Word segmenter for Chinese whole-word masking.",
                  flag_values=fv)
    d.DEFINE_string("wwm_dict", "", "jieba user dictionary for Chinese whole-word masking; implies "
                    "--segmenter=jieba --whole_word_masking.", flag_values=fv)
    d.DEFINE_bool("packing", False, "Fill each sequence with more text. --sentence_objective=none: whole "
                  "sentences of consecutive documents, separated by [SEP]. nsp/sop: several pairs of the same "
                  "label, [CLS] A1 [SEP] B1 [SEP] A2 [SEP] B2 [SEP] ..., so the sequence's label holds for "
                  "each pair.", flag_values=fv)
    d.DEFINE_integer("max_line_bytes", 100_000, "Longer lines are skipped (and counted in the manifest).",
                     flag_values=fv)
    d.DEFINE_bool("progress", True, "Show a progress bar on stderr.", flag_values=fv)


@entry
def main(argv):
    fv, code = parse_flags(define_flags, argv)
    if code is not None:
        return code
    manifest = run(fv)
    summary = {k: manifest[k] for k in ("num_instances", "num_shards", "documents", "input_stats",
                                        "sentence_labels", "sequence_stats", "masking_stats", "run")}
    print(json.dumps(summary, indent=2, sort_keys=True))
    empty = manifest.get("empty_chunks") or []
    if empty:
        print("note: %d input chunk(s) gave no instance (too little text in them), so %s was not written; the "
              "data has %d shard(s), not %d" % (len(empty), ", ".join(empty), manifest["num_shards"],
                                                manifest["num_shards"] + len(empty)), file=sys.stderr)
    print("wrote %d instances in %d shards to %s" % (manifest["num_instances"], manifest["num_shards"],
                                                     os.path.abspath(fv.out)))
    return 0


def config_from_flags(fv):
    from hvd_pretrain.data.config import DataConfig

    segmenter, whole_word = fv.segmenter, fv.whole_word_masking
    if fv.wwm_dict:
        segmenter, whole_word = "jieba", True
    return DataConfig(
        max_seq_length=fv.max_seq_length, max_predictions_per_seq=fv.max_predictions_per_seq,
        masked_lm_prob=fv.masked_lm_prob, short_seq_prob=fv.short_seq_prob, dupe_factor=fv.dupe_factor,
        sentence_objective=fv.sentence_objective, seed=fv.seed, num_shards=fv.num_shards,
        whole_word_masking=whole_word, ngram_max=fv.ngram_max, masking=fv.masking, segmenter=segmenter,
        wwm_dict=os.path.abspath(fv.wwm_dict) if fv.wwm_dict else "", max_line_bytes=fv.max_line_bytes,
        packing=fv.packing)


def run(fv):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data.create import create_pretraining_data
    from hvd_pretrain.errors import DataError

    if not fv.vocab:
        raise DataError("--vocab is required: a dir made by hvd-data vocab, or a vocab.txt")
    if not fv.out:
        raise DataError("--out is required: the directory for the shards")
    config = config_from_flags(fv).validate()
    workers = fv.num_workers or os.cpu_count() or 1
    bar = _progress_bar() if fv.progress else None
    try:
        return create_pretraining_data(fv.input_files or default_corpus(), fv.vocab, fv.out, config,
                                       num_workers=workers, progress=bar)
    finally:
        if bar:
            bar.close()


def _progress_bar():
    """A tqdm bar over the input bytes (so its rate and ETA are real), with documents, instances and shards."""
    from tqdm import tqdm

    state = {"bar": None}

    def update(progress):
        if state["bar"] is None:
            state["bar"] = tqdm(total=progress.bytes_total, unit="B", unit_scale=True, file=sys.stderr,
                                dynamic_ncols=True, desc="create")
        bar = state["bar"]
        bar.set_postfix(documents=progress.documents, instances=progress.instances,
                        shards="%d/%d" % (progress.shards_done, progress.shards_total), refresh=False)
        bar.update(progress.bytes_done - bar.n)

    update.close = lambda: state["bar"] and state["bar"].close()
    return update
