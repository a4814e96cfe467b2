"""Text that spells a special symbol ("[SEP]", "[MASK]", ...) never becomes a control id, with any tokenizer."""

import io

import numpy as np
import pytest

from datatools import records
from hvd_pretrain.corpus import default_corpus
from hvd_pretrain.data import DataConfig, create_pretraining_data
from hvd_pretrain.vocab import load_tokenizer, train_sentencepiece
from hvd_pretrain.vocab.spm_proto import CONTROL, USER_DEFINED, fields, piece_type, with_control_pieces

LITERALS = ["the [SEP] cat", "[CLS] starts here", "hidden [MASK] word", "x[SEP]y[MASK]z", "[PAD] and [UNK]",
            "lower [sep] [mask] [cls]", "[ SEP ]", "[[SEP]]", "a\u00a0[SEP]\u3000b"]
WORDS = ["the", "cat", "starts", "here", "hidden", "word", "and", "lower", "sep", "mask", "cls", "pad", "unk",
         "x", "y", "z", "a", "b"]


def _control_ids(tok):
    return {tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id}


def _all_encodings(tok, texts):
    """The ids of `texts` through every encode path a tokenizer has."""
    yield from (tok.encode(t) for t in texts)
    yield from tok.encode_batch(texts)
    yield tok.encode_flat(texts)[0].tolist()
    yield from (tok.encode_normalized(t)[0] for t in texts)


@pytest.fixture
def wordpiece(tmp_path):
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[", "]"] + WORDS
    (tmp_path / "vocab.txt").write_text("\n".join(pieces + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]) + "\n",
                                        encoding="utf-8")
    return load_tokenizer(str(tmp_path))


def test_wordpiece_literal_special_text_gives_ordinary_pieces(wordpiece):
    tok = wordpiece
    assert [tok.id_to_piece(i) for i in tok.encode("the [SEP] cat")] == ["the", "[", "sep", "]", "cat"]
    assert [tok.id_to_piece(i) for i in tok.encode("x[MASK]")] == ["x", "[", "mask", "]"]
    for ids in _all_encodings(tok, LITERALS):
        assert not _control_ids(tok) & set(ids), [tok.id_to_piece(i) for i in ids]
        assert tok.piece_to_id("[unused0]") not in ids


def test_wordpiece_literal_special_text_matches_googles_full_tokenizer(wordpiece):
    from bert import tokenization  # bert-tensorflow, a test extra
    tokenization.FLAGS(["test"])  # the module reads FLAGS.preserve_unused_tokens
    vocab = {wordpiece.id_to_piece(i): i for i in range(wordpiece.vocab_size)}
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    pieces = tokenization.WordpieceTokenizer(vocab=vocab)
    for text in LITERALS:
        expected = [vocab.get(p, vocab["[UNK]"]) for w in basic.tokenize(text) for p in pieces.tokenize(w)]
        assert wordpiece.encode(text) == expected, text


def test_cased_wordpiece_does_not_match_special_text_either(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[", "]", "SEP",
                                                   "The"]) + "\n", encoding="utf-8")
    tok = load_tokenizer(str(tmp_path))
    assert not tok.do_lower_case
    assert [tok.id_to_piece(i) for i in tok.encode("The [SEP]")] == ["The", "[", "SEP", "]"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("literal") / "corpus.txt"
    lines = []
    for i in range(60):
        lines += ["Sentence %d of the text writes [MASK] where a word is hidden." % i,
                  "It joins two parts with [SEP] and starts with [CLS] too.", "Plain words %d follow here." % i, ""]
    with open(default_corpus(), encoding="utf-8") as f:
        text = f.read(100_000)
    path.write_text("\n".join(lines) + "\n" + text[:text.rfind("\n\n") + 1], encoding="utf-8")
    return str(path)


def test_sentencepiece_literal_special_text_gives_ordinary_pieces(corpus, tmp_path):
    train_sentencepiece([corpus], str(tmp_path), 400, seed=1, num_threads=1)
    tok = load_tokenizer(str(tmp_path))
    for ids in _all_encodings(tok, LITERALS):
        assert not _control_ids(tok) & set(ids), [tok.id_to_piece(i) for i in ids]


def _train_raw(corpus, user_defined):
    """A SentencePiece model made outside hvd-data vocab, declaring `user_defined` user-defined symbols."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(input=corpus, model_writer=model, vocab_size=400, pad_id=0, unk_id=1,
                                   bos_id=-1, eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]",
                                   control_symbols=["[CLS]", "[SEP]"], user_defined_symbols=user_defined,
                                   minloglevel=2, num_threads=1)
    return model.getvalue()


def test_a_model_declaring_mask_user_defined_still_never_yields_it(corpus, tmp_path):
    model = _train_raw(corpus, ["[MASK]", "<url>"])
    (tmp_path / "spm.model").write_bytes(model)
    import sentencepiece as spm

    raw = spm.SentencePieceProcessor(model_proto=model)
    mask = raw.piece_to_id("[MASK]")
    assert mask in raw.encode("a [MASK] b")  # what the library does with the model as it is
    tok = load_tokenizer(str(tmp_path))
    assert tok.mask_id == mask and tok.id_to_piece(tok.mask_id) == "[MASK]"
    for ids in _all_encodings(tok, LITERALS):
        assert mask not in ids
    assert raw.piece_to_id("<url>") in tok.encode("see <url> here")  # other user-defined symbols still work
    assert tok.mask_id in tok.special_ids and tok.mask_id not in tok.random_ids


def test_with_control_pieces_changes_only_the_named_user_defined_pieces(corpus):
    model = _train_raw(corpus, ["[MASK]", "<url>"])
    changed = with_control_pieces(model, ["[MASK]", "[CLS]"])
    before = [piece_type(v) for n, _, v, _ in fields(model) if n == 1]
    after = [piece_type(v) for n, _, v, _ in fields(changed) if n == 1]
    assert len(before) == len(after)
    diff = [(b, a) for b, a in zip(before, after) if b != a]
    assert diff == [(("[MASK]", USER_DEFINED), ("[MASK]", CONTROL))]
    assert with_control_pieces(model, ["<none>"]) == model


def test_created_records_hold_special_ids_only_where_the_layout_puts_them(corpus, wordpiece, tmp_path):
    vocab_dir = str(tmp_path / "spm")
    train_sentencepiece([corpus], vocab_dir, 400, seed=1, num_threads=1)
    for vocab in (wordpiece.path, vocab_dir):
        tok = load_tokenizer(vocab)
        out = str(tmp_path / ("data_" + tok.kind))
        create_pretraining_data([corpus], vocab, out, DataConfig(max_seq_length=48, max_predictions_per_seq=5,
                                                                 masked_lm_prob=0.0001, dupe_factor=2,
                                                                 num_shards=1))
        found = records(out)
        assert found
        for rec in found:
            n = sum(rec["input_mask"])
            ids = np.array(rec["input_ids"][:n])
            assert ids[0] == tok.cls_id and (ids[1:] == tok.cls_id).sum() == 0
            assert (ids == tok.sep_id).sum() == 2 and ids[-1] == tok.sep_id
            masked = {p for p, w in zip(rec["masked_lm_positions"], rec["masked_lm_weights"]) if w}
            assert set(np.flatnonzero(ids == tok.mask_id).tolist()) <= masked
            assert (ids == tok.pad_id).sum() == 0
