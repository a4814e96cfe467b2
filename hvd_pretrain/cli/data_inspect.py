"""hvd-data inspect: print a data dir's manifest summary and a few decoded instances; optionally verify shards.

    hvd-data inspect --data=runs/x/data --num=3
    hvd-data inspect --data=runs/x/data --verify          # check every record's checksum
"""

import json
import os

from absl import flags

from hvd_pretrain.cli.flagutil import parse_flags
from hvd_pretrain.cli.entry import entry


def define_flags(fv):
    flags.DEFINE_string("data", None, "Data dir (or a glob of TFRecord files).", flag_values=fv)
    flags.DEFINE_string("vocab", "", "Vocab to decode ids with (default: the one named in the manifest).",
                        flag_values=fv)
    flags.DEFINE_integer("num", 3, "Instances to print from the first shard.", flag_values=fv)
    flags.DEFINE_bool("verify", False, "Check framing and checksum of every record of every shard.",
                      flag_values=fv)


@entry
def main(argv):
    fv, code = parse_flags(define_flags, argv)
    if code is not None:
        return code
    run(fv)
    return 0


def run(fv):
    from hvd_pretrain.errors import DataError
    from hvd_pretrain.data.shards import list_shards, read_manifest, verify_shards
    from hvd_pretrain.data.tfrecord import decode_example, iter_records
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    if not fv.data:
        raise DataError("--data is required: a dir made by hvd-data create")
    files = list_shards(fv.data)
    manifest = read_manifest(fv.data, missing_ok=True) if os.path.isdir(fv.data) else None
    if manifest:
        keys = ("num_instances", "num_shards", "config", "tokenizer", "input_stats", "masking_stats",
                "sentence_labels")
        print(json.dumps({k: manifest.get(k) for k in keys}, indent=2, sort_keys=True))
    else:
        print("no manifest; %d shard files" % len(files))
    if fv.verify:
        counts = verify_shards(files, manifest)
        print("verified %d shards, %d records" % (len(counts), sum(counts.values())))
    vocab = fv.vocab or (manifest or {}).get("tokenizer", {}).get("path", "")
    tokenizer = load_tokenizer(vocab) if vocab and os.path.exists(vocab) else None
    for index, record in enumerate(iter_records(files[0])):
        if index >= fv.num:
            break
        print("--- %s record %d" % (os.path.basename(files[0]), index))
        print(describe_record(decode_example(record), tokenizer))


def describe_record(features, tokenizer=None):
    """A readable rendering: tokens (masked ones as [MASK]/replacement with the target after '=>')."""
    ids = features["input_ids"]
    length = sum(features.get("input_mask", [1] * len(ids)))
    targets = {}
    if "masked_lm_positions" in features:
        for pos, target, weight in zip(features["masked_lm_positions"], features["masked_lm_ids"],
                                       features["masked_lm_weights"]):
            if weight > 0:
                targets[pos] = target

    def piece(token_id):
        return tokenizer.id_to_piece(token_id) if tokenizer else str(token_id)

    tokens = []
    for pos in range(length):
        text = piece(ids[pos])
        if pos in targets:
            text = "<%s=>%s>" % (text, piece(targets[pos]))
        tokens.append(text)
    segments = features.get("segment_ids", [])
    return "label=%s segments=%s\n%s" % (features.get("next_sentence_labels"),
                                         "".join(str(s) for s in segments[:length]), " ".join(tokens))
