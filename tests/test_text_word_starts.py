"""Word starts come from the text the tokenizer sees: a character that normalizes to several tokens is one word part."""

import numpy as np
import pytest

from hvd_pretrain.data.segmenter import JiebaSegmenter, token_word_starts
from hvd_pretrain.data.token_documents import tokenize_documents
from hvd_pretrain.vocab import load_tokenizer, train_sentencepiece

# Characters NFKC (SentencePiece's nmt_nfkc) expands into several characters, inside Chinese and English text.
EXPANDING = ["重量是5㎏左右的包裹。", "半杯½的水和¼的糖。", "ＡＢＣ公司发布了新产品。", "平成㍻年的事情。",
             "the ½ cup of ﬁne ﬂour", "x ¨ y and ㎏ or ㎞", "第⑴条和第⑵条规定。", "℡ 电话号码"]
PLAIN = ["我们在北京大学学习自然语言处理。", "今天的天气非常好，适合出去散步。", "机器学习需要大量的训练数据。",
         "Whole word masking keeps words together.", "Ordinary English text with some longer words."]


@pytest.fixture(scope="module")
def spm(tmp_path_factory):
    root = tmp_path_factory.mktemp("spm_zh")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join((PLAIN + EXPANDING) * 30) + "\n", encoding="utf-8")
    train_sentencepiece([str(corpus)], str(root / "vocab"), 120, seed=1, num_threads=1, character_coverage=0.98)
    return load_tokenizer(str(root / "vocab"))


@pytest.fixture(scope="module")
def segmenter():
    return JiebaSegmenter()


def _source_groups(tok, text):
    """Token indices grouped by the character of `text` they start at (SentencePiece's offset mapping)."""
    mapping = tok.sp.encode_as_offset_mapping(text)
    groups = {}
    for i, (start, _) in enumerate(mapping["offsets"]):
        groups.setdefault(start, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def test_tokens_of_one_source_character_never_start_two_words(spm, segmenter):
    docs = tokenize_documents([EXPANDING], spm, segmenter)
    shared = 0
    for s, text in enumerate(EXPANDING):
        starts = docs.word_starts[docs.sentence_bounds[s]:docs.sentence_bounds[s + 1]]
        for group in _source_groups(spm, text):
            shared += 1
            assert not starts[group[1:]].any(), (text, [spm.id_to_piece(i) for i in spm.encode(text)], starts)
    assert shared >= 4  # the sentences do hold characters that became several tokens


def test_segmenter_words_are_taken_on_the_normalized_text(spm, segmenter):
    ids, normalized, starts, inside = spm.encode_normalized("重量是5㎏左右")
    assert "kg" in normalized and "㎏" not in normalized
    flags = segmenter.token_word_starts(normalized, starts, inside)
    kg = [i for i, s in enumerate(starts) if normalized[s:s + 1] in ("k", "g")]
    assert len(kg) >= 1 and flags[kg].sum() <= 1  # "kg" is one word for jieba, as the tokenizer sees it
    words = {start for _, start, _ in segmenter.tokenizer.tokenize(normalized)}
    for i, start in enumerate(starts):
        if flags[i] and normalized[start:start + 1].strip():
            assert start in words


@pytest.mark.parametrize("text", EXPANDING + PLAIN + ["", " ", "  two  spaces ", "tab\tand\u00a0nbsp", "\u200bzero"])
def test_encode_normalized_gives_the_ids_of_the_text(spm, text):
    ids, normalized, starts, inside = spm.encode_normalized(text)
    assert ids == spm.encode(text) and len(starts) == len(ids) == len(inside)
    assert starts == sorted(starts) and all(0 <= s <= len(normalized) for s in starts)
    assert len(set(starts)) == len(starts)  # no byte fallback here: every token has a character of its own


def test_sentencepiece_word_starts_match_the_words_of_the_normalized_text(spm):
    """Without a segmenter, a word is a "▁" run: each starts with exactly one word-start token, even when
    normalization turned one character into a known piece and an unknown one ("½" -> "▁1" [UNK] "2")."""
    docs = tokenize_documents([EXPANDING + PLAIN], spm)
    assert not spm.is_word_start(spm.unk_id)
    for s, text in enumerate(EXPANDING + PLAIN):
        starts = docs.word_starts[docs.sentence_bounds[s]:docs.sentence_bounds[s + 1]]
        assert starts.sum() == len(spm.encode_normalized(text)[1].split()), text


def test_byte_fallback_tokens_of_one_character_form_one_word_part(tmp_path, segmenter):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(PLAIN * 20) + "\n", encoding="utf-8")
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_writer=model, vocab_size=330, byte_fallback=True, pad_id=0, unk_id=1, bos_id=-1,
        eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]", control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2, num_threads=1)
    (tmp_path / "spm.model").write_bytes(model.getvalue())
    tok = load_tokenizer(str(tmp_path))
    text = "我们在鑫淼学习"  # 鑫 and 淼 are not in the training text: three byte tokens each
    ids, normalized, starts, inside = tok.encode_normalized(text)
    assert ids == tok.encode(text) and normalized.strip() == text
    flags = segmenter.token_word_starts(normalized, starts, inside)
    for char in "鑫淼":
        tokens = [i for i, s in enumerate(starts) if normalized[s] == char]
        assert len(tokens) == 3 and not flags[tokens[1:]].any()


def test_wordpiece_normalized_text_keeps_chinese_characters_together(tmp_path, segmenter):
    chars = sorted({c for s in PLAIN[:3] for c in s})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n",
                                        encoding="utf-8")
    tok = load_tokenizer(str(tmp_path))
    for text in PLAIN[:3]:
        ids, normalized, starts, inside = tok.encode_normalized(text)
        assert ids == tok.encode(text) and normalized == text and starts == list(range(len(text)))
        flags = segmenter.token_word_starts(normalized, starts, inside)
        assert flags.tolist() == [i in segmenter.word_start_offsets(text) for i in range(len(text))]


def test_token_word_starts_rules():
    # " kg数": a "▁" token, then "k" and "g" (one jieba word "kg"), then "数"
    assert token_word_starts(" kg数", [0, 1, 2, 3], {0, 1, 3}).tolist() == [True, False, False, True]
    # bytes of one character share its start: only the first can start a word
    assert token_word_starts("鑫学习", [0, 0, 0, 1, 2], {0, 1}).tolist() == [True, False, False, True, False]
    assert token_word_starts("学鑫", [0, 1, 1, 1], {0}).tolist() == [True, False, False, False]
    # a piece with a leading space ("▁北京") starts where its first character does
    assert token_word_starts(" 北京 大学", [0, 3], {1, 4}).tolist() == [True, True]
    # "▁1", "⁄", "2" made from " ½": jieba splits "1⁄2" into three words, but one source character is one word part
    assert token_word_starts(" 1⁄2", [0, 2, 3], {1, 2, 3}, [False, True, True]).tolist() == [True, False, False]
    assert token_word_starts("", [], set()).dtype == np.bool_


@pytest.mark.parametrize("vocab_words, lower", [(["the", "istanbul", "i", "##̇"], True), (["The", "İ"], False)])
def test_wordpiece_encode_normalized_gives_the_ids_of_the_text(tmp_path, vocab_words, lower):
    chars = sorted({c for s in PLAIN + EXPANDING + ["abcdefghijklmnopqrstuvwxyz"] for c in s.lower()})
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + vocab_words + chars + ["##" + c for c in chars]
    (tmp_path / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    tok = load_tokenizer(str(tmp_path), do_lower_case=lower, strip_accents=False)
    for text in PLAIN + EXPANDING + ["İstanbul naïve Café", "", "  ", "a\u200bb \x00c"]:
        ids, normalized, starts, inside = tok.encode_normalized(text)
        assert ids == tok.encode(text) and len(starts) == len(inside) == len(ids)
        assert starts == sorted(starts) and not inside[:1] == [True]
    ids, normalized, starts, inside = tok.encode_normalized("İstanbul")
    if lower:  # "İ" lower-cases to "i" + U+0307: two tokens of one source character
        assert [tok.id_to_piece(i) for i in ids][:2] == ["i", "##̇"] and inside[1]
