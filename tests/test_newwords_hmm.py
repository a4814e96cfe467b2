"""The words of jieba's HMM in the hybrid method: candidates, HMM share ranking, phrase rules."""

import pytest

from hvd_pretrain.vocab.newwords import hmmwords, hybrid, segmented
from hvd_pretrain.vocab.newwords.counting import CountConfig
from newwordstools import write_planted_corpus

NAME = "龚雯"  # always in 记者龚雯报道: no character statistic isolates it, jieba's HMM does


class FakeSegmenter:
    """Blocks split on '|', pieces on spaces: given by the test. Counts the blocks it cuts."""

    def __init__(self):
        self.cuts = 0

    def blocks(self, text):
        return text.split("|")

    def cut(self, text, hmm=False):
        self.cuts += 1
        return text.split()


PHRASES = [("三人", "phrase:first:numeral"), ("五好", "phrase:first:numeral"),
           ("书中", "phrase:last:localizer"), ("灯下", "phrase:last:localizer"),
           ("标间", ""),                      # jieba tags 间 as a localizer too: the rule names the characters
           ("美欧", "phrase:abbreviations"), ("俄法", "phrase:abbreviations"), ("王磊", ""), ("陈雁", "")]


@pytest.fixture(scope="module")
def seg():
    out = segmented.JiebaSegmentation(hybrid.jieba_dict_path())
    out.load_tags(piece for word, _ in PHRASES for piece in out.cut(word))  # one read of dict.txt
    return out


def test_count_pieces_keeps_unknown_cjk_pieces_of_two_to_max_len():
    lines = ["记者 龚雯 报道", "龚雯 说 ABC 龚雯", "一个很长的词 龚 雯"]
    pieces = hmmwords.count_pieces(FakeSegmenter(), lines, 4, {"记者", "报道"})
    assert dict(pieces.count) == {"龚雯": 3}       # known, one character, Latin, longer than 4: left out
    assert pieces.lines == 3
    assert pieces.share("龚雯", 4) == 0.75
    assert pieces.share("龚雯", 0) == 0.0
    assert pieces.share("报道", 5) == 0.0
    assert pieces.select(3) == ["龚雯"] and pieces.select(4) == []


def test_a_repeated_block_is_segmented_once():
    fake = FakeSegmenter()
    pieces = hmmwords.count_pieces(fake, ["记者 龚雯|报道", "记者 龚雯|评论", "记者 龚雯"], 4, {"记者"})
    assert fake.cuts == 3                          # 记者 龚雯 once, 报道, 评论
    assert pieces.count["龚雯"] == 3 and pieces.count["报道"] == 1


def test_pruning_drops_the_rarest_with_one_floor():
    lines = ["甲乙 " * 5 + "丙丁 " * 3 + "戊己 庚辛 壬癸"]
    pieces = hmmwords.count_pieces(FakeSegmenter(), lines, 4, set(), max_entries=4)
    assert pieces.floor == 1
    assert dict(pieces.count) == {"甲乙": 5, "丙丁": 3}


@pytest.mark.parametrize("word, reason", PHRASES)
def test_numeral_localizer_and_abbreviation_phrases(seg, word, reason):
    assert not seg.knows(word)
    assert segmented.function_edge(seg, word) == reason


def test_jieba_knows_its_words_not_its_prefixes(seg):
    assert seg.knows("记者") and not seg.knows("龚雯")
    assert seg.cut("记者龚雯报道", hmm=True) == ["记者", NAME, "报道"]
    assert seg.cut("记者龚雯报道") == ["记者", "龚", "雯", "报道"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    def plant(i, rng, words):
        if i % 3 == 0:
            words.insert(3, "记者" + NAME + "报道")
    path = write_planted_corpus(tmp_path_factory.mktemp("hmm") / "corpus.txt", 11, plant)
    out = {}
    for on in (True, False):
        config = hybrid.NewWordsConfig(method="hybrid", hmm_words=on, count_config=CountConfig(workers=1))
        out[on] = hybrid.discover([path], config)
    return out


def test_a_word_only_jiebas_hmm_isolates_is_proposed(results):
    off = {c.word for c in results[False].words}
    on = {c.word: c for c in results[True].words}
    assert NAME not in off
    assert NAME in on and on[NAME].source == "hmm" and on[NAME].freq == 300
    assert on[NAME].hmm_share == 1.0
    assert on[NAME].left_entropy == 0.0          # its character statistics alone reject it
    assert results[True].stage_counts["hmm_proposed"] >= 1
    assert "hmm_proposed" not in results[False].stage_counts


def test_words_the_hmm_never_isolates_rank_last(results):
    shares = [hmmwords.evidence(c) for c in results[True].words]
    assert shares == sorted(shares)
    assert results[True].stage_counts["hmm_share_low"] == shares.count(2)


def test_blocks_segment_as_the_whole_line(seg):
    line = "新华社北京１月１日电，记者龚雯报道：ABC-3型号好！"
    blocks = seg.blocks(line)
    assert blocks == ["新华社北京", "月", "日电", "记者龚雯报道", "ABC-3型号好"]
    whole = [p for p in seg.cut(line, hmm=True) if p.strip() and p in "".join(blocks)]
    assert [p for b in blocks for p in seg.cut(b, hmm=True)] == whole
