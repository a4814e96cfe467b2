"""Two-pass n-gram counting: hashes, exact counts, pruning in bounded memory, workers."""

import collections
import math

import numpy as np
import pytest

from hvd_pretrain.vocab.newwords import counting, ngrams, textio
from test_newwords_support import excerpt


def _exact_ngrams(lines, max_len):
    counts = collections.Counter()
    for line in lines:
        run = ""
        for ch in line + "\n":
            if textio.is_cjk_char(ch):
                run += ch
                continue
            for n in range(1, max_len + 1):
                counts.update(run[i:i + n] for i in range(len(run) - n + 1))
            run = ""
    return counts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    lines = excerpt(600)[0]
    path = tmp_path_factory.mktemp("count") / "pd.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), lines


def test_hashes_agree_between_array_matrix_and_string_forms():
    text = excerpt(5)[0][1]  # 中共中央总书记、国家主席江泽民
    cp = textio.codepoints(text)
    for n, hashes in ngrams.rolling_hashes(cp, 4):
        for i in range(len(text) - n + 1):
            assert int(hashes[i]) == ngrams.hash_string(text[i:i + n])
        rows = np.array([[ord(c) for c in text[i:i + n]] for i in range(len(text) - n + 1)])
        assert ngrams.hash_matrix(rows).tolist() == hashes.tolist()
    assert ngrams.hash_string("中国") != ngrams.hash_string("国中")


def test_pass1_counts_every_ngram_exactly_without_pruning(corpus):
    path, lines = corpus
    result = counting.count_pass1([path], counting.CountConfig(max_len=3, workers=1))
    assert result.prunes == []
    exact = _exact_ngrams(lines, 3)
    for n in (1, 2, 3):
        codes, counts = result.unigrams if n == 1 else result.tables[n]
        want = {ngrams.hash_string(w): c for w, c in exact.items() if len(w) == n}
        assert dict(zip(codes.tolist(), counts.tolist())) == want
    assert result.stats.cjk_chars == sum(c for w, c in exact.items() if len(w) == 1)


def test_six_character_ngrams_are_counted_exactly(tmp_path):
    lines = excerpt(150)[0]
    path = tmp_path / "pd150.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = counting.count_pass1([str(path)], counting.CountConfig(max_len=6, workers=1))
    exact = _exact_ngrams(lines, 6)
    for n in (5, 6):
        codes, counts = result.tables[n]
        assert dict(zip(codes.tolist(), counts.tolist())) == {
            ngrams.hash_string(w): c for w, c in exact.items() if len(w) == n}
    assert ngrams.hash_string("中华人民共和") in set(result.tables[6][0].tolist())


def test_pruning_bounds_the_table_and_keeps_it_closed_under_substrings(corpus):
    path, lines = corpus
    config = counting.CountConfig(max_len=4, workers=1, chunk_bytes=16 << 10, memory_budget_bytes=1 << 20,
                                  min_merge_entries=1000)
    result = counting.count_pass1([path], config)
    assert result.prunes, "a 1 MB budget must force pruning on this excerpt"
    assert all(p["after"] <= result.max_entries for p in result.prunes)
    present = {n: set(result.tables[n][0].tolist()) for n in result.tables}
    present[1] = set(result.unigrams[0].tolist())
    exact = _exact_ngrams(lines, 4)
    by_hash = {ngrams.hash_string(w): w for w in exact}
    for n in (3, 4):
        codes, counts = result.tables[n]
        for code, count in zip(codes.tolist(), counts.tolist()):
            word = by_hash[code]
            assert count <= exact[word]
            assert ngrams.hash_string(word[:-1]) in present[n - 1] and ngrams.hash_string(word[1:]) in present[n - 1]
    # every n-gram frequent enough survives, whatever the pruning did
    frequent = [w for w, c in exact.items() if len(w) >= 2 and c >= 40]
    assert frequent and all(ngrams.hash_string(w) in present[len(w)] for w in frequent)


def test_pass2_counts_candidates_exactly_and_measures_neighbour_entropy(corpus):
    path, lines = corpus
    config = counting.CountConfig(max_len=3, workers=1, memory_budget_bytes=1 << 20, min_merge_entries=1000)
    pass1 = counting.count_pass1([path], config)
    candidates = counting.select_candidates(pass1, 5)
    stats, _, _ = counting.count_pass2([path], config, candidates)
    exact = _exact_ngrams(lines, 3)
    checked = 0
    for n in (2, 3):
        for j, word in enumerate(stats[n].words):
            assert word is not None and stats[n].freq[j] == exact[word]
            if word in ("经济", "中国", "发展"):
                left = collections.Counter()
                for line in lines:
                    start = line.find(word)
                    while start >= 0:
                        ch = line[start - 1] if start else ""
                        if ch and textio.is_cjk_char(ch):
                            left[ch] += 1
                        else:
                            left["0" if ch.isdigit() else "a" if ch.isascii() and ch.isalpha() else ""] += 1
                        start = line.find(word, start + 1)
                total = sum(left.values())
                want = sum(c / total * math.log(total) if ch == "" else -c / total * math.log(c / total)
                           for ch, c in left.items())
                assert stats[n].left_entropy[j] == pytest.approx(want, rel=1e-6)
                checked += 1
    assert checked == 3


@pytest.mark.timeout(120)
def test_two_workers_give_the_same_counts_as_one(corpus):
    path, _ = corpus
    one = counting.count_pass1([path], counting.CountConfig(max_len=3, workers=1, chunk_bytes=32 << 10))
    two = counting.count_pass1([path], counting.CountConfig(max_len=3, workers=2, chunk_bytes=32 << 10))
    assert one.stats == two.stats
    for n in (2, 3):
        assert np.array_equal(one.tables[n][0], two.tables[n][0])
        assert np.array_equal(one.tables[n][1], two.tables[n][1])
