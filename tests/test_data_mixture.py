"""Weighted mixing of corpora: exact proportions, exact resume, clear errors."""

import itertools
import os

import numpy as np
import pytest

from hvd_pretrain.data.mixture import MixtureCursor, choose, mixed_stream, parse_mixture
from hvd_pretrain.data.tfrecord import TFRecordWriter, encode_example
from hvd_pretrain.errors import DataError


def _corpus(directory, tag, sizes):
    os.makedirs(directory, exist_ok=True)
    files = []
    for s, n in enumerate(sizes):
        path = os.path.join(directory, "part-%d.tfrecord" % s)
        with TFRecordWriter(path) as w:
            w.write_many([encode_example({"id": [tag, s, i]}) for i in range(n)])
        files.append(path)
    return files, list(sizes)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    return [_corpus(str(root / "wiki"), 0, [900, 1300]), _corpus(str(root / "books"), 1, [250])]


def test_parse_mixture_normalises_and_explains(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert parse_mixture("%s:7,%s:3" % (a, b)) == [(str(a), 0.7), (str(b), 0.3)]
    assert parse_mixture("%s,%s" % (a, b)) is None  # a plain list is a union, not a mix
    for spec, words in (("%s:0.5,%s" % (a, b), "every data dir a weight"), ("%s:1,%s:0" % (a, b), "must be > 0"),
                        ("%s:1,%s:1" % (a, tmp_path / "nope"), "is not a directory"),
                        ("%s:1,%s:2" % (a, a), "twice")):
        with pytest.raises(DataError, match=words):
            parse_mixture(spec)


def test_choices_follow_the_weights_exactly():
    weights = [0.7, 0.2, 0.1]
    choices, drawn = choose(weights, [0, 0, 0], 10000)
    assert drawn.tolist() == [7000, 2000, 1000]
    for n in (1, 10, 333, 9999):  # within one example of the target after any prefix
        counts = np.bincount(choices[:n], minlength=3)
        assert np.all(np.abs(counts - np.asarray(weights) * n) <= 1.0), (n, counts)
    again, _ = choose(weights, np.bincount(choices[:4321], minlength=3), 10000 - 4321)
    assert again.tolist() == choices[4321:].tolist()  # the choice continues from the counts alone


def _stream(corpora, cursor, rank, n):
    return [tuple(k.tolist()) for k, _ in itertools.islice(mixed_stream(corpora, cursor, rank, 64), n)]


def test_mixed_stream_proportions_and_exact_resume(corpora):
    names = ["wiki", "books"]
    start = MixtureCursor.start(names, [0.7, 0.3], corpora, seed=3, world=2)
    keys = _stream(corpora, start, 0, 10000)
    books = sum(1 for k in keys if k[2] >= 2)  # shard indices 0, 1: wiki; 2: books
    assert abs(books / 10000 - 0.3) <= 0.01  # the small corpus is repeated over its epochs, by weight
    assert len(set(keys[:125])) == 125  # nothing repeats within the small corpus's first epoch share
    resumed = start.advanced(3333)
    assert _stream(corpora, resumed, 0, 2000) == keys[3333:5333]
    assert MixtureCursor.from_dict(resumed.to_dict()) == resumed
    assert resumed.corpus_examples() == {"wiki": 2 * 2333, "books": 2 * 1000}
    assert not set(_stream(corpora, start, 1, 500)) & set(keys[:500])  # ranks read different examples
