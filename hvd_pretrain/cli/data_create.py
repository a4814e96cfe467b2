"""hvd-data create: text -> masked pre-training instances -> TFRecord shards + manifest.json.

    hvd-data create --vocab=runs/x/vocab --out=runs/x/data                # the embedded corpus
    hvd-data create --input_files='corpus/*.txt' --vocab=vocab --out=data --num_workers=8 \\
        --whole_word_masking --ngram_max=3 --sentence_objective=sop
    hvd-data create --input_files=zh.txt --vocab=zh_vocab --out=zh_data --wwm_dict=newwords.txt
    hvd-data create --input_files=zh.txt --vocab=zh_vocab --out=zh_data --ref_file=zh_ref.txt
    hvd-data create --input_files='wiki/*.jsonl.zst' --text_field=text --split_sentences=auto --vocab=vocab --out=data

Under horovodrun or mpirun every rank makes its share of the chunks (i % world size == rank)
into the same --out, which all ranks must see (a shared filesystem); rank 0 writes the
manifest when all are done, and the shards are those of a single process, byte for byte.

The records carry google-research/bert's features, so its run_pretraining.py
reads them (static masking). The output is the same for any --num_workers, and
an interrupted run can be rerun: finished shards are kept.
"""

import json
import os
import sys

from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.cli.entry import entry
from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.inputs import InputConfig


def define_flags(fv):
    d = flags
    d.DEFINE_string("input_files", "", "Corpus files (comma-separated, globs allowed): text (by default one sentence "
                    "per line, a blank line between documents), JSON Lines or Parquet, compressed or not. Default: the "
                    "embedded corpus.", flag_values=fv)
    d.DEFINE_string("vocab", None, "Vocab dir (spm.model or vocab.txt), or a path to either.", flag_values=fv)
    d.DEFINE_string("out", None, "Output dir for the shards and manifest.json.", flag_values=fv)
    options.define(DataConfig, fv)
    options.define(InputConfig, fv)
    d.DEFINE_integer("num_workers", 0, "Worker processes per rank (0: all cores, shared among the ranks of a "
                     "machine under horovodrun or mpirun).", flag_values=fv)
    d.DEFINE_bool("progress", True, "Show a progress bar on stderr.", flag_values=fv)


@entry
def main(argv):
    fv, code = parse_flags(define_flags, argv)
    if code is not None:
        return code
    manifest = run(fv)
    if "rank" in manifest:  # a rank other than 0 of a multi-rank launch: rank 0 writes and reports the manifest
        print("rank %d: made %d shards (%d already done)" % (manifest["rank"], manifest["shards_made"],
                                                              manifest["shards_reused"]))
        return 0
    summary = {k: manifest[k] for k in ("num_instances", "num_shards", "documents", "input_stats",
                                        "sentence_labels", "sequence_stats", "masking_stats", "run")}
    if manifest.get("eval"):
        summary["eval"] = manifest["eval"]
    print(json.dumps(summary, indent=2, sort_keys=True))
    empty = manifest.get("empty_chunks") or []
    if empty:
        print("note: %d input chunk(s) gave no instance (too little text in them), so %s was not written; the "
              "data has %d shard(s), not %d" % (len(empty), ", ".join(empty), manifest["num_shards"],
                                                manifest["num_shards"] + len(empty)), file=sys.stderr)
    print("wrote %d instances in %d shards to %s" % (manifest["num_instances"], manifest["num_shards"],
                                                     os.path.abspath(fv.out)))
    if manifest.get("eval"):
        held = manifest["eval"]
        print("held out %d documents: %d eval instances in %d shards in %s" % (
            held["documents"], held["num_instances"], held["num_shards"], os.path.join(os.path.abspath(fv.out),
                                                                                      held["dir"])))
    return 0


def config_from_flags(fv):
    """The DataConfig the flags describe (--wwm_dict alone implies jieba whole-word masking, --ref_file
    reference-file whole-word masking)."""
    values = options.read(DataConfig, fv, {f.name for f, _, _ in DataConfig.options()})
    if values["wwm_dict"]:
        if values["segmenter"] == "none":
            values.update(segmenter="jieba")
        values.update(whole_word_masking=True, wwm_dict=os.path.abspath(values["wwm_dict"]))
    if values["ref_file"]:
        if values["segmenter"] == "none":
            values.update(segmenter="ref_file")
        values.update(whole_word_masking=True, ref_file=os.path.abspath(values["ref_file"]))
    return DataConfig(**values)


def reading_from_flags(fv):
    """The InputConfig the format flags describe (--input_format, --text_field, ...)."""
    return InputConfig(**options.read(InputConfig, fv, {f.name for f, _, _ in InputConfig.options()})).validate()


def run(fv):
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data.create import create_pretraining_data
    from hvd_pretrain.data.distributed import World
    from hvd_pretrain.errors import DataError

    if not fv.vocab:
        raise DataError("--vocab is required: a dir made by hvd-data vocab, or a vocab.txt")
    if not fv.out:
        raise DataError("--out is required: the directory for the shards")
    config = config_from_flags(fv).validate()
    world = World.from_env()  # rank and world size under horovodrun or mpirun; 0 of 1 otherwise
    workers = fv.num_workers or max(1, (os.cpu_count() or 1) // world.local_size)
    bar = _progress_bar() if fv.progress and world.rank == 0 else None
    try:
        return create_pretraining_data(fv.input_files or default_corpus(), fv.vocab, fv.out, config,
                                       num_workers=workers, progress=bar, reading=reading_from_flags(fv),
                                       world=world)
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
