"""Chinese whole-word masking: jieba word boundaries (with a user dictionary) over a WordPiece vocab.

Google's Chinese BERT vocab splits Chinese text into single characters; jieba
groups them into words, and every character of a word is masked together.
"""

import random

import jieba
import numpy as np
import pytest

from hvd_pretrain.data import DataConfig, DataError, create_pretraining_data, list_shards
from hvd_pretrain.data import segmenter
from hvd_pretrain.data.segmenter import JiebaSegmenter
from hvd_pretrain.data.tfrecord import decode_example, iter_records
from hvd_pretrain.vocab import load_tokenizer

SENTENCES = [
    "我们在北京大学学习自然语言处理。", "今天的天气非常好，适合出去散步。", "机器学习需要大量的训练数据。",
    "这个模型在很多任务上取得了很好的效果。", "研究人员提出了一种新的预训练方法。", "中文分词是自然语言处理的基础任务。",
    "他每天早上都会去图书馆看书。", "深度学习改变了计算机视觉的研究方向。", "我们需要更快的计算机来训练大模型。",
    "老师在课堂上讲解了数学问题。", "这家公司发布了新的手机产品。", "城市里的交通越来越拥挤了。",
    "学生们在操场上进行体育锻炼。", "科学家发现了一种新的化学元素。", "自然语言处理技术已经广泛应用于搜索引擎。",
    "医生建议大家多喝水多运动。", "这本小说讲述了一个感人的故事。", "人工智能正在改变我们的生活方式。",
    "他们计划明年去上海旅游。", "经济发展需要稳定的社会环境。",
]
USER_WORD = "预训练方法"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    rng = random.Random(0)
    documents = ["\n".join(rng.sample(SENTENCES, rng.randint(3, 8))) for _ in range(80)]
    corpus = root / "zh.txt"
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    chars = sorted({c for s in SENTENCES for c in s})
    vocab = root / "vocab"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n",
                                     encoding="utf-8")
    user_dict = root / "userdict.txt"
    user_dict.write_text("%s 100000 n\n" % USER_WORD, encoding="utf-8")
    return str(corpus), str(vocab), str(user_dict)


_REFERENCE = {}


def _reference_words(text, user_dict):
    """jieba's words of `text`, from a segmenter of the test's own (built once)."""
    if user_dict not in _REFERENCE:
        reference = jieba.Tokenizer()
        reference.load_userdict(user_dict)
        _REFERENCE[user_dict] = reference
    return [(start, end) for _, start, end in _REFERENCE[user_dict].tokenize(text)]


def test_jieba_words_are_masked_whole(setup, tmp_path):
    corpus, vocab, user_dict = setup
    tok = load_tokenizer(vocab)
    segmenter._LOADED.clear()
    loads = JiebaSegmenter.loads
    create_pretraining_data([corpus], vocab, str(tmp_path), DataConfig(
        dupe_factor=5, num_shards=1, whole_word_masking=True, segmenter="jieba", wwm_dict=user_dict,
        max_predictions_per_seq=20))
    assert JiebaSegmenter.loads - loads == 1  # once per process: the check before work and the inline worker
    words_checked = multi_char_masked = user_word_masked = 0
    for record in (decode_example(r) for f in list_shards(str(tmp_path)) for r in iter_records(f)):
        ids = np.array(record["input_ids"])
        k = int(sum(record["masked_lm_weights"]))
        positions = record["masked_lm_positions"][:k]
        ids[positions] = record["masked_lm_ids"][:k]
        masked = set(positions)
        n = sum(record["input_mask"])
        for segment in (0, 1):
            index = [p for p in range(1, n) if record["segment_ids"][p] == segment and ids[p] != tok.sep_id]
            text = "".join(tok.id_to_piece(ids[p]) for p in index)
            # whole sentences only: a truncated first or last sentence may segment differently
            cuts = [i + 1 for i, ch in enumerate(text) if ch == "。"]
            for begin, end in zip(cuts[:-1], cuts[1:]):
                for start, stop in _reference_words(text[begin:end], user_dict):
                    hits = sum(index[begin + i] in masked for i in range(start, stop))
                    assert hits in (0, stop - start), text[begin:end][start:stop]
                    words_checked += 1
                    multi_char_masked += hits > 1
                    user_word_masked += hits == len(USER_WORD) and text[begin + start:begin + stop] == USER_WORD
    assert words_checked > 5000 and multi_char_masked > 300 and user_word_masked >= 1


def test_user_dictionary_changes_the_words(setup):
    _, _, user_dict = setup
    sentence = "研究人员提出了一种新的预训练方法。"
    assert USER_WORD in JiebaSegmenter(user_dict).words(sentence)
    assert USER_WORD not in JiebaSegmenter().words(sentence)


def test_without_whole_word_masking_words_are_split(setup, tmp_path):
    corpus, vocab, _ = setup
    create_pretraining_data([corpus], vocab, str(tmp_path), DataConfig(dupe_factor=2, num_shards=1))
    partial = 0
    tok = load_tokenizer(vocab)
    for record in (decode_example(r) for f in list_shards(str(tmp_path)) for r in iter_records(f)):
        k = int(sum(record["masked_lm_weights"]))
        positions = set(record["masked_lm_positions"][:k])
        for p in positions:  # a masked character whose neighbour in the same word is not masked
            partial += (p + 1 not in positions) and record["input_ids"][p + 1] not in (tok.sep_id, tok.pad_id)
    assert partial > 100


def test_bad_user_dictionary_is_refused(setup, tmp_path):
    corpus, vocab, _ = setup
    with pytest.raises(DataError, match="--wwm_dict=.*not found"):
        create_pretraining_data([corpus], vocab, str(tmp_path), DataConfig(
            whole_word_masking=True, segmenter="jieba", wwm_dict=str(tmp_path / "nope.txt")))
    with pytest.raises(DataError, match="needs --segmenter=jieba"):
        DataConfig(wwm_dict="x.txt").validate()
