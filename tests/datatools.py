"""Reading created TFRecord shards back in tests (no TensorFlow)."""

import hashlib
import os

from hvd_pretrain.data import list_shards
from hvd_pretrain.data.tfrecord import decode_example, iter_records


def records(data_dir):
    """Every record of every shard of `data_dir`, decoded to {feature: list}."""
    return [decode_example(r) for f in list_shards(data_dir) for r in iter_records(f)]


def digest(data_dir):
    """{shard file name: SHA-256 of its bytes}."""
    out = {}
    for path in list_shards(data_dir):
        with open(path, "rb") as f:
            out[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    return out


def masked_multitoken_words(ids, n, masked, tok, segment_starts=()):
    """Assert that every word of the first n tokens is masked entirely or not at all.

    A word ends at [CLS]/[SEP], at a word-start token and at each of `segment_starts`.
    Returns how many masked words have more than one token (so a test can require some).
    """
    multi, word = 0, []
    for pos in list(range(1, n)) + [n]:
        special = pos >= n or ids[pos] in (tok.cls_id, tok.sep_id)
        if word and (special or pos in segment_starts or tok.is_word_start(ids[pos])):
            hits = sum(p in masked for p in word)
            assert hits in (0, len(word)), (word, sorted(masked))
            multi += hits > 1
            word = []
        if not special:
            word.append(pos)
    return multi
