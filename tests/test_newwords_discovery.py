"""New-word discovery on real text: planted words, chance co-occurrence, methods, bad input."""

import codecs
import this

import pytest

from hvd_pretrain.vocab.newwords import evaluation, hmmwords, hybrid, scoring, textio
from hvd_pretrain.vocab.newwords.counting import CountConfig
from test_newwords_support import CHANCE, PLANTED, excerpt, planted_corpus

PLANTED_TIMES = 40
CHANCE_TIMES = 2500


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("nw") / "planted.txt"
    lines = planted_corpus(str(path), lines=3000, planted_times=PLANTED_TIMES, chance_times=CHANCE_TIMES)
    return str(path), "\n".join(lines)


def _run(path, method, base_dict="jieba", **kw):
    config = hybrid.NewWordsConfig(method=method, base_dict=base_dict, count_config=CountConfig(workers=1), **kw)
    return hybrid.discover([path], config)


@pytest.fixture(scope="module")
def results(corpus):
    path, _ = corpus
    return {m: _run(path, m) for m in hybrid.METHODS} | {"stats_all": _run(path, "stats", base_dict="")}


def test_planted_word_is_discovered_with_its_exact_count(corpus, results):
    assert corpus[1].count(PLANTED) == PLANTED_TIMES
    for method in ("stats", "hybrid", "stats_all"):
        found = {c.word: c for c in results[method].words}
        assert PLANTED in found, method
        assert found[PLANTED].freq == PLANTED_TIMES
        assert found[PLANTED].cohesion > 5 and found[PLANTED].freedom > 2
    assert PLANTED not in {c.word for c in results["rules"].words}  # no pattern describes it


def test_chance_cooccurrence_is_not_discovered(corpus, results):
    _, text = corpus
    a, b = CHANCE
    res = results["stats_all"]
    assert text.count(a) >= CHANCE_TIMES and text.count(b) >= CHANCE_TIMES
    # the pair does occur, more often than min_count: only its cohesion can reject it
    assert text.count(a + b) >= res.thresholds.min_count and text.count(b + a) >= res.thresholds.min_count
    words = {c.word for r in results.values() for c in r.words}
    assert not any((a in w) or (b in w) for w in words)


def test_hybrid_removes_known_words_and_applies_the_rules(results):
    known = hybrid.load_base_dict("jieba")
    hyb = results["hybrid"]
    assert hyb.words and not any(c.word in known for c in hyb.words)
    assert hyb.vetoes.get("edge:function", 0) > 0
    assert not any(c.word[0] in "的了是在" or c.word[-1] in "的了是在" for c in hyb.words)
    stats_words = {c.word for c in results["stats"].words}
    assert any(w[-1] in "的了" for w in stats_words)  # what the rules take out
    keys = [(hmmwords.evidence(c), -c.score) for c in hyb.words]  # the parts of jieba's HMM evidence, by score
    assert keys == sorted(keys)
    assert hyb.stage_counts["stats_known"] > 0


def test_statistics_find_real_words_and_short_words_best(results):
    _, counts, reference, _ = excerpt(3000)
    words = [c.word for c in results["stats_all"].words]
    precision = evaluation.precision_at(words, reference, ks=(100, 500))
    assert precision[100] >= 0.85 and precision[500] >= 0.8
    by_len = evaluation.precision_by_length(words, reference)
    assert by_len[2][0] / by_len[2][1] > by_len[4][0] / by_len[4][1]
    rec, targets = evaluation.recall(words, counts, 10)
    assert targets > 500 and rec > 0.4


def test_thresholds_scale_with_corpus_size():
    small, large = scoring.resolve_thresholds(scoring.Thresholds(), 3e5), scoring.resolve_thresholds(
        scoring.Thresholds(), 3e8)
    assert small.min_count < large.min_count and small.min_entropy <= large.min_entropy
    assert scoring.resolve_thresholds(scoring.Thresholds(min_count=7), 3e8).min_count == 7


def test_lines_that_are_not_utf8_are_skipped_and_counted(tmp_path):
    lines = excerpt(400)[0]
    path = tmp_path / "mixed.txt"
    with open(path, "wb") as f:
        for i, line in enumerate(lines):
            f.write(line.encode("gbk" if i % 50 == 0 else "utf-8", errors="replace") + b"\n")
    res = _run(str(path), "stats")
    bad = sum(1 for i in range(len(lines)) if i % 50 == 0)
    assert res.corpus.bad_lines == bad
    assert res.corpus.lines == len(lines) - bad
    assert any("not valid UTF-8" in w for w in res.warnings)


def test_text_without_chinese_gives_a_warning_and_no_words(tmp_path):
    path = tmp_path / "zen.txt"
    path.write_text(codecs.decode(this.s, "rot13") * 20, encoding="utf-8")
    res = _run(str(path), "hybrid")
    assert res.words == []
    assert any("does not look like Chinese" in w for w in res.warnings)


def test_empty_input_is_an_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(textio.InputError, match="input is empty: .*empty.txt"):
        _run(str(empty), "hybrid")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n\n", encoding="utf-8")
    with pytest.raises(textio.InputError, match="contain no text"):
        _run(str(blank), "stats")
    with pytest.raises(textio.InputError, match="does not exist"):
        _run(str(tmp_path / "missing.txt"), "stats")
