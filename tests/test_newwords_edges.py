"""New-word discovery on tiny and degenerate inputs: every numpy path with 0, 1 and 2
candidates, empty and one-line corpora, text without CJK, and the line-boundary rule of
branching entropy."""

import math

import numpy as np
import pytest

from hvd_pretrain.cli import data_newwords
from hvd_pretrain.vocab.newwords import counting, evaluation, hybrid, ngrams, report, rules, scoring, textio

SHIFT = np.uint64(ngrams.CP_BITS)


def _pairs(items):
    """[(candidate index, neighbour code, count)] -> sorted (codes, counts) as pass 2 keeps them."""
    if not items:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint32)
    codes = np.array([(i << ngrams.CP_BITS) | nb for i, nb, _ in items], dtype=np.uint64)
    counts = np.array([c for _, _, c in items], dtype=np.uint32)
    order = np.argsort(codes)
    return codes[order], counts[order]


@pytest.mark.parametrize("size", [0, 1, 2])
def test_branching_entropy_of_candidates_without_neighbour_pairs_is_float_zero(size):
    entropy = counting.branching_entropy(_pairs([]), size)
    assert entropy.dtype == np.float64 and entropy.shape == (size,)
    assert entropy.tolist() == [0.0] * size


def test_branching_entropy_counts_each_boundary_as_a_new_neighbour():
    b, x, y = ngrams.BOUNDARY, ord("好"), ord("坏")
    one = counting.branching_entropy(_pairs([(0, b, 6)]), 1)
    assert one.tolist() == pytest.approx([math.log(6)])
    two = counting.branching_entropy(_pairs([(0, b, 3), (1, x, 2), (1, y, 2)]), 2)
    assert two.tolist() == pytest.approx([math.log(3), math.log(2)])
    # only boundaries among two candidates' pairs: the other candidate stays at 0
    only_second = counting.branching_entropy(_pairs([(1, b, 4)]), 2)
    assert only_second.dtype == np.float64 and only_second.tolist() == pytest.approx([0.0, math.log(4)])


@pytest.mark.parametrize("size", [0, 1, 2])
def test_merge_floor_index_and_unique_counts_take_0_1_2_entries(size):
    codes = np.array([ngrams.hash_string(w) for w in ["中国", "国人"][:size]], dtype=np.uint64)
    order = np.argsort(codes)
    codes = codes[order]
    counts = np.arange(1, size + 1, dtype=np.uint32)
    merged = counting.merge_counts([(codes, counts), (codes, counts), (codes[:0], counts[:0])])
    assert merged[0].dtype == np.uint64 and merged[1].dtype == np.uint32
    assert merged[0].tolist() == codes.tolist() and merged[1].tolist() == (2 * counts).tolist()
    assert counting.choose_floor([counts], 1) >= 2
    uniq, cnt = ngrams.unique_counts(np.concatenate([codes, codes]))
    assert uniq.tolist() == codes.tolist() and cnt.tolist() == [2] * size and cnt.dtype == np.uint32
    index = ngrams.HashIndex(codes)
    queries = np.concatenate([codes, np.array([12345], dtype=np.uint64)])
    assert index.lookup(queries).tolist() == list(range(size)) + [-1]


@pytest.mark.parametrize("words", [[], ["啵茶"], ["啵茶", "芋泥"]])
def test_cohesion_and_score_take_0_1_2_words(words):
    unigram_codes = np.array(sorted(ngrams.hash_string(c) for c in "啵茶芋泥"), dtype=np.uint64)
    tables = {1: (unigram_codes, np.full(4, 5, dtype=np.uint32))}
    freq = np.full(len(words), 5, dtype=np.int64)
    cohesion = scoring.cohesion_of(2, words, freq, tables, {1: 100, 2: 90})
    assert cohesion.dtype == np.float64 and cohesion.shape == (len(words),)
    assert np.isfinite(cohesion).all()
    assert scoring.score(freq, cohesion, np.ones(len(words))).shape == (len(words),)


def _one_line_file(tmp_path, text, name="c.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_pass2_and_scoring_with_0_1_2_candidates_of_a_length(tmp_path, kept):
    path = _one_line_file(tmp_path, "啵啵茶很好喝\n啵啵茶太甜了\n芋泥盒卖完了\n")
    config = counting.CountConfig(max_len=4, workers=1)
    pass1 = counting.count_pass1([path], config)
    candidates = counting.select_candidates(pass1, 2)
    assert len(candidates[2]) == 2 and len(candidates[3]) == 1 and len(candidates[4]) == 0
    candidates[2] = candidates[2][:kept]
    stats, _, _ = counting.count_pass2([path], config, candidates)
    for n, st in stats.items():
        assert st.left_entropy.dtype == st.right_entropy.dtype == np.float64
        assert len(st.words) == len(st.freq) == len(st.left_entropy) == len(candidates[n])
    found = scoring.statistical_candidates(pass1, candidates, stats, scoring.Thresholds(2, 0.01, 0.01),
                                           keep_all=True)
    assert sorted(c.word for c in found) == sorted(["啵啵", "啵茶"][:kept] + ["啵啵茶"])


def test_rules_reports_and_quality_take_no_words(tmp_path):
    empty = rules.ProposalCounts()
    assert empty.entropies() == {} and empty.select(1) == []
    assert evaluation.precision_at([], {"中国"}) == {100: None, 500: None, 1000: None}
    assert evaluation.precision_by_length([], {"中国"}) == {}
    assert evaluation.recall([], {}, 1) == (None, 0)
    assert evaluation.quality([], {"中国": 3}, {"中国"}, min_freq=1)["recall"] == 0.0
    one = [scoring.Candidate(word="啵啵茶", freq=3, cohesion=2.0, left_entropy=1.0, right_entropy=1.0)]
    assert evaluation.quality(one, {"啵啵茶": 3}, {"啵啵茶"}, min_freq=1)["precision_by_length"] == {"3": (1, 1)}


@pytest.mark.parametrize("count", [1, 2])
def test_rule_proposal_entropies_take_1_and_2_words(count):
    proposals = rules.ProposalCounts()
    words = ["霉素甲", "霉素乙"][:count]
    for word in words:
        for left in ["", "", "", "药"]:
            proposals.count[word] += 1
            proposals.left[(word, left)] += 1
            proposals.right[(word, "")] += 1
    entropies = proposals.entropies()
    assert sorted(entropies) == sorted(words)
    left_boundaries = 3 / 4 * math.log(4)  # three line starts, each a new neighbour, and one 药
    for word in words:
        assert entropies[word] == pytest.approx((left_boundaries + 1 / 4 * math.log(4), math.log(4)))
    assert sorted(proposals.select(2)) == sorted(words)


CORPORA = {
    "one_line": "今天天气很好我们去公园散步\n",
    "one_character": "中",
    "no_cjk": "plain english text\nwith 2 lines\n",
    "five_lines": "啵啵茶很好喝\n啵啵茶太甜了\n芋泥盒卖完了\n今天我买芋泥盒\n周末他们要芋泥盒\n",
    "one_repeated_line": "中国人\n" * 12,
    "cjk_between_latin": "中国abc中国123中国\n" * 6,
}


@pytest.mark.parametrize("name", sorted(CORPORA))
@pytest.mark.parametrize("method", hybrid.METHODS)
def test_small_corpora_give_a_result_for_every_method_and_length(tmp_path, name, method):
    path = _one_line_file(tmp_path, CORPORA[name])
    for max_len in (2, 4, 6):
        for min_count in (0, 1, 2):
            low = 0.1 if min_count else 0.0
            config = hybrid.NewWordsConfig(method=method, max_len=max_len, base_dict="",
                                           thresholds=scoring.Thresholds(min_count, low, low),
                                           count_config=counting.CountConfig(workers=1))
            result = hybrid.discover([path], config)
            assert all(c.freq >= 1 and len(c.word) >= 2 for c in result.words)
            report.write_outputs(str(tmp_path / "out"), result)
            assert len(report.read_tsv(str(tmp_path / "out" / report.TSV_NAME))) == len(result.words)
    if name == "no_cjk":
        assert result.words == [] and any("CJK" in w for w in result.warnings)


def _edge_corpus(path, seed=5):
    """A word only ever at line starts (8 distinct right neighbours), another only ever at
    line ends (8 distinct left neighbours), and random filler lines."""
    rng = np.random.default_rng(seed)
    tails = ["好喝", "太甜", "卖完", "排队", "珍珠", "放冰", "新品", "送人"]
    heads = ["我买", "他要", "同事", "朋友", "老板", "大家", "邻居", "我们"]
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 1500) if chr(c) not in "咕噜饼酥脆卷"]
    lines = ["咕噜饼" + t for t in tails] + [h + "酥脆卷" for h in heads]
    lines += ["".join(rng.choice(pool, 8)) for _ in range(600)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("max_len", [3, 4, 5])
def test_line_starts_and_ends_count_as_distinct_neighbours(tmp_path, max_len):
    path = _edge_corpus(tmp_path / "edge.txt")
    config = hybrid.NewWordsConfig(method="stats", max_len=max_len, base_dict="",
                                   thresholds=scoring.Thresholds(5, 1.0, 0.5),
                                   count_config=counting.CountConfig(workers=1))
    found = {c.word: c for c in hybrid.discover([path], config).words}
    for word in ("咕噜饼", "酥脆卷"):
        assert found[word].freq == 8
        assert found[word].left_entropy == pytest.approx(math.log(8), abs=1e-9)
        assert found[word].right_entropy == pytest.approx(math.log(8), abs=1e-9)
    for part in ("咕噜", "噜饼", "酥脆", "脆卷"):
        assert part not in found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_cli_on_a_five_line_corpus_exits_0_and_on_unusable_input_2(tmp_path, capsys, workers):
    five = _one_line_file(tmp_path, CORPORA["five_lines"], "five.txt")
    base = ["hvd-data newwords", "--workers=%d" % workers, "--base_dict=none", "--quiet", "--method=stats",
            "--min_count=2", "--min_cohesion=0.1", "--min_entropy=0.1"]
    assert data_newwords.main(base + ["--input_files=" + five, "--out=%s" % (tmp_path / "o5")]) == 0
    assert (tmp_path / "o5" / report.TSV_NAME).exists()
    capsys.readouterr()
    for text in ("", "\n\n"):
        bad = _one_line_file(tmp_path, text, "bad.txt")
        assert data_newwords.main(base + ["--input_files=" + bad, "--out=%s" % (tmp_path / "ob")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: input is empty") and "bad.txt" in err[0]
    with pytest.raises(textio.InputError):
        textio.check_input_files([])
