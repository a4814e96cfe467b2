"""The jieba-based filters of the hybrid method: fragments, function edges, verb + object, known word + rest."""

import pytest

from hvd_pretrain.vocab.newwords import hybrid, ngrams, segmented
from hvd_pretrain.vocab.newwords.counting import CountConfig
from newwordstools import write_planted_corpus

FRAGMENT = "鼗鞨增"          # always followed by 长 加 强 多 进: ends inside 增长 增加 增强 增多 增进
REST_WORD, KNOWN = "貘犸", "记者"  # always after 记者, varied on the right


@pytest.fixture(scope="module")
def seg():
    return segmented.JiebaSegmentation(hybrid.jieba_dict_path())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    def plant(i, rng, words):
        if i % 3 == 0:
            words.insert(3, FRAGMENT + rng.choice("长加强多进"))
        elif i % 3 == 1:
            words.insert(2, KNOWN + REST_WORD)
    return write_planted_corpus(tmp_path_factory.mktemp("seg") / "corpus.txt", 7, plant)


@pytest.fixture(scope="module")
def results(corpus):
    out = {}
    for on in (True, False):
        config = hybrid.NewWordsConfig(method="hybrid", segmented_filters=on, count_config=CountConfig(workers=1))
        out[on] = hybrid.discover([corpus], config)
    return out


def test_known_word_plus_rest_is_split():
    known = {"记者", "增长"}
    assert segmented.known_word_rest("记者毛磊", known) == ("毛磊", "left")
    assert segmented.known_word_rest("鼗鞨增长", known) == ("鼗鞨", "right")
    assert segmented.known_word_rest("记者增长", known) is None       # both parts known: a compound, not a rest
    assert segmented.known_word_rest("记者王", known) is None          # the rest is one character
    assert segmented.known_word_rest("王磊", known) is None


@pytest.mark.parametrize("word, reason", [
    ("不忘", "phrase:first:d"),
    ("已达", "phrase:first:d"),
    ("包饺子", "phrase:verb_object"),
    ("写春联", "phrase:verb_object"),
    ("王磊", ""),
    ("烤漆", ""),                      # one-character verb + one character: left to the statistics
    ("锦江之星", ""),
])
def test_function_edges_and_verb_object(seg, word, reason):
    assert segmented.function_edge(seg, word) == reason


def test_fragment_shares_weight_neighbours_by_count(seg):
    b = ngrams.BOUNDARY
    # 占全 + 国 (全国 is a word) 9 times, + punctuation once
    assert segmented.fragment_shares(seg, "占全", [], [(ord("国"), 9), (b, 1)]) == (0.0, 0.9)
    # after 洛 the start is inside 洛阳 (3 of 4 occurrences); before 说 the end is clean
    start, end = segmented.fragment_shares(seg, "阳市", [(ord("洛"), 3), (b, 1)], [(ord("说"), 4)])
    assert start == 0.75 and end == 0.0
    assert segmented.fragment_shares(seg, "王磊", [], []) == (0.0, 0.0)


def test_a_start_inside_a_name_is_not_a_fragment_start(seg):
    # 部长 + 刘: the start crosses a known word; 王 + 丽华: jieba's piece is a personal name
    assert segmented.fragment_shares(seg, "长刘", [(ord("部"), 5)], []) == (1.0, 0.0)
    total, pieces = segmented.crossings(seg, "丽华", [(ord("王"), 5)], "left")
    seg.load_tags(piece for piece, _ in pieces)
    assert total == 5 and pieces and seg.tag(pieces[0][0]).startswith("nr")
    assert segmented.fragment_shares(seg, "丽华", [(ord("王"), 5)], []) == (0.0, 0.0)


def test_a_start_after_a_number_is_a_fragment_start(seg):
    # 万人 after digits (１０万人) or a Chinese numeral (三万人) starts inside the number + magnitude
    d, b = ngrams.DIGIT, ngrams.BOUNDARY
    start, _ = segmented.fragment_shares(seg, "万人", [(d, 6), (ord("三"), 2), (b, 2)], [])
    assert start == 0.8
    start, _ = segmented.fragment_shares(seg, "王磊", [(d, 1), (b, 9)], [])
    assert start == 0.1


def test_a_known_place_with_its_suffix_makes_the_candidate_its_stem(seg):
    # jieba knows 唐山市 (a place) but not 唐山: 唐山 + 市 does not make 唐山 a fragment.
    # 另一 + 个 is one known word too, but not a place: it still counts as ending inside a word.
    _, end = segmented.fragment_shares(seg, "唐山", [], [(ord("市"), 6), (ngrams.BOUNDARY, 4)])
    assert end == 0.0
    _, end = segmented.fragment_shares(seg, "另一", [], [(ord("个"), 6), (ngrams.BOUNDARY, 4)])
    assert end == 0.6


def test_a_string_that_ends_inside_known_words_is_a_fragment(results):
    off = {c.word for c in results[False].words}
    on = {c.word for c in results[True].words}
    assert FRAGMENT in off            # the character statistics accept it
    assert FRAGMENT not in on
    assert results[True].vetoes.get("fragment:end", 0) >= 1


def test_known_word_plus_rest_is_replaced_by_the_rest(results):
    known = hybrid.load_base_dict("jieba", only={KNOWN, REST_WORD, KNOWN + REST_WORD})
    assert KNOWN in known and REST_WORD not in known
    off = {c.word for c in results[False].words}
    on = {c.word: c for c in results[True].words}
    assert KNOWN + REST_WORD in off and REST_WORD not in off   # the rest's left side never varies
    assert KNOWN + REST_WORD not in on and REST_WORD in on
    assert on[REST_WORD].freq == 300
    assert results[True].stage_counts["rests_proposed"] >= 1


def test_filters_are_off_without_jieba_as_base(corpus):
    config = hybrid.NewWordsConfig(method="hybrid", base_dict="", count_config=CountConfig(workers=1))
    result = hybrid.discover([corpus], config)
    assert not any(k.startswith(("fragment", "phrase")) for k in result.vetoes)
    assert "rests_proposed" not in result.stage_counts


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_a_fragment_share_out_of_range_is_a_config_error(share):
    from hvd_pretrain.errors import ConfigError
    with pytest.raises(ConfigError, match="fragment_share"):
        hybrid.validate(hybrid.NewWordsConfig(fragment_share=share))
