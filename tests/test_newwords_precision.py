"""Boundary precision of discovered words against a gold segmentation, on hand-made gold data."""

import pytest

from hvd_pretrain.vocab.newwords import evaluation

GOLD = [
    "记者/n  王/nr  磊/nr  报道/v  ：/w  南昆/j  铁路/n  今天/t  通车/v  。/w",
    "[巴基斯坦/ns  总统/n]nt  访问/v  南昆/j  铁路/n  ，/w  王/nr  磊/nr  陪同/v  。/w",
    "价格/n  较/d  低/a  ，/w  王/nr  磊/nr  说/v  。/w",
    "副/b  主任/n  说/v  经济/n  发展/vn  快/a  ，/w  新/a  情况/n  。/w",
]


@pytest.fixture(scope="module")
def gold():
    return evaluation.GoldSegmentation.from_lines(GOLD)


def test_text_and_boundaries_follow_the_gold_tokens(gold):
    assert gold.text.split("\n")[:3] == ["记者王磊报道：南昆铁路今天通车。", "巴基斯坦总统访问南昆铁路，王磊陪同。",
                                         "价格较低，王磊说。"]
    start = gold.text.index("南昆铁路")
    assert gold.boundary[start] and not gold.boundary[start + 1] and gold.boundary[start + 2]


@pytest.mark.parametrize("word, kind", [
    ("记者", "word"),          # one gold token
    ("王磊", "word"),          # surname + given name, joined
    ("巴基斯坦总统", "word"),   # a bracketed entity
    ("副主任", "compound"),     # modifier + nominal head, one of them a single character
    ("南昆铁路", "phrase"),     # two + two characters: a free phrase unless PKU brackets it
    ("经济发展", "phrase"),
    ("新情况", "phrase"),       # a free adjective before a noun
    ("记者王", "phrase"),       # a title before a (part of a) name
    ("较低", "phrase"),        # adverb + adjective: on boundaries, but not a compound
    ("今天通车", "phrase"),
    ("斯坦", "crossing"),      # starts inside 巴基斯坦
    ("磊报", "crossing"),      # crosses the boundary between 磊 and 报道
    ("昆铁", "crossing"),
])
def test_each_occurrence_is_classified(gold, word, kind):
    counts = gold.agreement(word)
    assert sum(counts.values()) >= 1
    assert counts[kind] == sum(counts.values()), counts


def test_a_word_that_crosses_a_gold_boundary_is_wrong_one_that_matches_is_right(gold):
    assert evaluation.agrees(gold.agreement("王磊"))
    assert evaluation.agrees(gold.agreement("副主任"))
    assert not evaluation.agrees(gold.agreement("副主任"), strict=True)  # strict: gold words only
    for wrong in ("斯坦", "磊报", "较低", "昆铁", "南昆铁路", "不在文中"):
        assert not evaluation.agrees(gold.agreement(wrong)), wrong


def test_the_share_threshold_decides_mixed_words():
    gold = evaluation.GoldSegmentation.from_lines([
        "太岳/ns  山/n  。/w", "太岳/ns  。/w", "太岳/ns  区/n  。/w", "老/a  太/d  岳父/n  。/w"])
    counts = gold.agreement("太岳")
    assert counts == {"word": 3, "compound": 0, "phrase": 0, "crossing": 1}
    assert not evaluation.agrees(counts, share=0.8)
    assert evaluation.agrees(counts, share=0.75)


def test_boundary_precision_at_k(gold):
    words = ["王磊", "副主任", "斯坦", "较低"]
    assert evaluation.boundary_precision_at(words, gold, ks=(1, 2, 4, 5)) == {1: 1.0, 2: 1.0, 4: 0.5, 5: None}
    assert evaluation.boundary_precision_at(words, gold, ks=(2,), strict=True) == {2: 0.5}
    assert evaluation.boundary_precision_at([], gold, ks=(1,)) == {1: None}


def test_quality_block_carries_the_boundary_precision(gold):
    q = evaluation.quality(["王磊", "斯坦"], {"王磊": 3}, {"王磊"}, min_freq=1, gold=gold, boundary_ks=(2,))
    assert q["boundary_precision_at"] == {"2": 0.5} and q["strict_precision_at"] == {"2": 0.5}
    assert "boundary_precision_at" not in evaluation.quality(["王磊"], {"王磊": 3}, {"王磊"}, min_freq=1)


def test_bound_compounds_reject_pieces_of_free_phrases():
    lines = ["两/m  国/n  关系/n  良好/a  。/w", "新华社/nt  北京/ns  电/n  记者/n  王/nr  磊/nr  报道/v  。/w",
             "副/b  主任/n  说/v  。/w", "京剧/n  史/Ng  。/w"]
    bound = evaluation.GoldSegmentation.from_lines(lines)
    lenient = evaluation.GoldSegmentation.from_lines(lines, compounds="lenient")
    for piece in ("国关系", "电记者"):  # a free one-character noun before a noun: rewarded only by 'lenient'
        assert lenient.agreement(piece)["compound"] == 1 and evaluation.agrees(lenient.agreement(piece))
        assert bound.agreement(piece)["phrase"] == 1 and not evaluation.agrees(bound.agreement(piece))
        assert evaluation.agrees(bound.agreement(piece, "lenient"))   # the rule can be chosen per call
    for word in ("副主任", "京剧史"):  # a bound modifier; a two-character modifier before a one-character head
        assert bound.agreement(word)["compound"] == 1
    assert evaluation.boundary_precision_at(["国关系", "副主任"], bound, ks=(2,)) == {2: 0.5}
    assert evaluation.boundary_precision_at(["国关系", "副主任"], bound, ks=(2,), compounds="lenient") == {2: 1.0}
    with pytest.raises(ValueError):
        evaluation.GoldSegmentation.from_lines(lines, compounds="loose")
