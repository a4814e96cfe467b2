"""The embedded default corpus: real prose, >= 1 MB, BERT format, cached, deterministic."""

import os

import pytest

from hvd_pretrain import corpus
from hvd_pretrain.cache import cache_root
from hvd_pretrain.data import read_documents


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return cache, corpus.default_corpus(cache_dir=cache)


def test_default_corpus_is_big_enough_and_in_bert_format(built):
    _, path = built
    assert os.path.getsize(path) >= 1 << 20
    documents = list(read_documents([path]))
    assert len(documents) > 1000
    assert all(documents) and all(sentence.strip() for doc in documents for sentence in doc)
    sentences = [s for doc in documents for s in doc]
    # one sentence per line: most lines end like sentences and are neither code nor fragments
    ends = sum(s.rstrip().endswith((".", "!", "?", ":", ")", '"', "'")) for s in sentences)
    assert ends / len(sentences) > 0.8
    assert not any(s.lstrip().startswith(">>>") for s in sentences)
    assert sum(len(s.split()) for s in sentences) / len(sentences) > 8
    assert sum(len(doc) >= 2 for doc in documents) / len(documents) > 0.9


def test_default_corpus_is_cached(built):
    cache, path = built
    assert path.startswith(os.path.join(cache, "corpus"))
    mtime = os.stat(path).st_mtime_ns
    assert corpus.default_corpus(cache_dir=cache) == path
    assert os.stat(path).st_mtime_ns == mtime
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".corpus.")]  # no temp files left


def test_cache_dir_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HVD_PRETRAIN_CACHE", str(tmp_path))
    assert cache_root() == str(tmp_path)


def test_build_is_deterministic():
    root = os.path.join(corpus.stdlib_dir(), "email")
    first = corpus.build_corpus_text(root)
    assert len(first) > 10000
    assert corpus.build_corpus_text(root) == first


def test_sentence_splitting_keeps_abbreviations_together():
    text = "Use e.g. a list or a tuple. It returns 3.5 when asked. Mr. Smith wrote it! Does it work? Yes it does."
    assert corpus.split_sentences(text) == [
        "Use e.g. a list or a tuple.", "It returns 3.5 when asked.", "Mr. Smith wrote it!", "Does it work?",
        "Yes it does."]


def test_code_and_doctests_are_dropped():
    doc = ("Return the sum of the values.\n\nThis is the second paragraph of the prose.\n\n"
           ">>> add(1, 2)\n3\n\n    indented = code_block()\n\n:param x: the value\n")
    paragraphs = list(corpus.prose_paragraphs(doc))
    assert paragraphs == ["Return the sum of the values.", "This is the second paragraph of the prose."]
