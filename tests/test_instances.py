"""Instance planning on token ranges: grouping as in Google's loop, NSP/SOP labels, truncation, packing
(of documents, and of NSP/SOP pairs)."""

import random

import numpy as np
import pytest

from hvd_pretrain.data.instances import (COLUMN, LENGTH, ROW, SOURCE, SPAN_LENGTH, InstanceTable, _plan_pairs,
                                         packed_instances, packed_pair_instances, pair_instances, single_instances)
from hvd_pretrain.data.sequences import assemble
from hvd_pretrain.data.token_documents import TokenDocuments

SEP = 3


def _documents(seed, num_docs=800, max_sentences=12, sentence_tokens=(1, 40)):
    """Random document structure; token i has id i, so a token's id is its place in the corpus."""
    rng = np.random.default_rng(seed)
    lengths = [rng.integers(sentence_tokens[0], sentence_tokens[1] + 1, rng.integers(1, max_sentences + 1))
               for _ in range(num_docs)]
    sentence_bounds = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).tolist()
    document_bounds = np.concatenate([[0], np.cumsum([len(x) for x in lengths])]).tolist()
    total = sentence_bounds[-1]
    return TokenDocuments(np.append(np.arange(total, dtype=np.int32), np.int32(SEP)), np.ones(total + 1, dtype=bool),
                          sentence_bounds, document_bounds, total)


def _ranges(table):
    """(a_start, a_len, b_start, b_len, label) per row of a table of one piece per segment."""
    out = np.zeros((len(table), 4), dtype=np.int64)
    for row, column, source, length in table.pieces.tolist():
        segment = 0 if column == 1 else 2
        out[row, segment:segment + 2] = source, length
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3], table.label


class _LabelBlocks:
    """Labels in blocks of two (one 0, one 1, random order); a label that cannot be made is put back,
    and a block whose first label cannot be made is dropped."""

    def __init__(self, rand):
        self.rand, self.queue = rand, []

    def next(self, zero_ok=True, one_ok=True):
        fresh = not self.queue
        if fresh:
            first = int(self.rand() < 0.5)
            self.queue = [first, 1 - first]
        label = self.queue.pop(0)
        if (label == 0 and not zero_ok) or (label == 1 and not one_ok):
            self.queue = [] if fresh else [label]
            return None
        return label


def _reference_pairs(documents, max_tokens, short_seq_prob, objective, rand):
    """Google's create_instances_from_document loop over lists of sentences (with the label drawn for
    every instance from balanced blocks of two), drawing random numbers in the same order as the planner."""
    labels = _LabelBlocks(rand)
    bounds = documents.sentence_bounds
    docs = [[(bounds[s], bounds[s + 1] - bounds[s]) for s in range(documents.document_bounds[d],
                                                                    documents.document_bounds[d + 1])]
            for d in range(documents.num_documents)]
    out = []
    for d, doc in enumerate(docs):
        target = max_tokens
        if rand() < short_seq_prob:
            target = 2 + int(rand() * (max_tokens - 1))
        chunk, length, i = [], 0, 0
        while i < len(doc):
            chunk.append(doc[i])
            length += doc[i][1]
            if i == len(doc) - 1 or length >= target:
                random_next, made = False, True
                if objective == "nsp":
                    drawn = labels.next(zero_ok=len(chunk) >= 2 or chunk[0][1] >= 2, one_ok=len(docs) > 1)
                    random_next, made = drawn == 1, drawn is not None
                if not made:
                    pass
                elif len(chunk) >= 2:
                    a_end = 1 + int(rand() * (len(chunk) - 1))
                    a = (chunk[0][0], sum(n for _, n in chunk[:a_end]))
                    if random_next:
                        i -= len(chunk) - a_end
                    else:
                        b = (chunk[a_end][0], sum(n for _, n in chunk[a_end:]))
                elif random_next:
                    a = chunk[0]
                elif chunk[0][1] >= 2:
                    cut = 1 + int(rand() * (chunk[0][1] - 1))
                    a, b = (chunk[0][0], cut), (chunk[0][0] + cut, chunk[0][1] - cut)
                else:
                    made = False
                if made:
                    if random_next:
                        want = max(1, target - a[1])
                        other = int(rand() * (len(docs) - 1))
                        other += other >= d
                        start = int(rand() * len(docs[other]))
                        picked = 0
                        for _, n in docs[other][start:]:
                            picked += n
                            if picked >= want:
                                break
                        b = (docs[other][start][0], picked)
                    label = int(random_next)
                    if objective == "sop" and labels.next() == 1:
                        a, b, label = b, a, 1
                    out.append((a[0], a[1], b[0], b[1], label))
                chunk, length = [], 0
            i += 1
    if labels.queue and len(out) > 1 and out[-1][4] != labels.queue[0]:
        out.pop()  # the first half of an unfinished block
    return out


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_grouping_follows_googles_sentence_loop(objective):
    documents = _documents(0)
    planned = _plan_pairs(documents.document_bounds, documents.sentence_bounds, 125, 0.1, objective == "nsp",
                          objective == "sop", random.Random(5).random)
    reference = _reference_pairs(documents, 125, 0.1, objective, random.Random(5).random)
    assert len(reference) > 1000
    assert [tuple(planned[k:k + 5]) for k in range(0, len(planned), 5)] == reference


def _document_of(documents, tokens):
    token_bounds = np.array(documents.sentence_bounds)[documents.document_bounds]
    return np.searchsorted(token_bounds, tokens, side="right") - 1


def test_nsp_pairs_are_token_ranges_with_balanced_labels():
    documents = _documents(1)
    rng = np.random.default_rng(0)
    table = pair_instances(documents, 128, 0.1, "nsp", random.Random(0), rng)
    a_start, a_len, b_start, b_len, label = _ranges(table)
    assert np.all(a_len >= 1) and np.all(b_len >= 1) and np.all(a_len + b_len <= 125)
    a_doc, b_doc = _document_of(documents, a_start), _document_of(documents, b_start)
    assert np.array_equal(a_doc, _document_of(documents, a_start + a_len - 1))  # each segment in one document
    assert np.array_equal(b_doc, _document_of(documents, b_start + b_len - 1))
    assert np.all(a_doc[label == 1] != b_doc[label == 1])  # random next: from another document
    whole = (a_len + b_len < 125) & (label == 0)  # not truncated: B follows A directly
    assert whole.sum() > 500 and np.all(b_start[whole] == a_start[whole] + a_len[whole])
    assert label.mean() == 0.5  # labels come in balanced blocks of two


def test_sop_swaps_neighbours():
    documents = _documents(2)
    table = pair_instances(documents, 128, 0.1, "sop", random.Random(1), np.random.default_rng(1))
    a_start, a_len, b_start, b_len, label = _ranges(table)
    whole = a_len + b_len < 125
    assert np.all(b_start[whole & (label == 0)] == (a_start + a_len)[whole & (label == 0)])
    assert np.all(a_start[whole & (label == 1)] == (b_start + b_len)[whole & (label == 1)])
    assert label.mean() == 0.5


def test_truncation_trims_front_and_back_evenly():
    # one 200-token sentence per group: a random-next A is the whole sentence, then trimmed to fit
    documents = _documents(3, num_docs=300, max_sentences=3, sentence_tokens=(200, 200))
    table = pair_instances(documents, 128, 0.0, "nsp", random.Random(2), np.random.default_rng(2))
    a_start, a_len, _, _, label = _ranges(table)
    assert np.all(a_len <= 125)
    front = a_start[label == 1] % 200  # sentences start at multiples of 200
    removed = 200 - a_len[label == 1]
    assert removed.sum() > 30_000 and abs(front.sum() / removed.sum() - 0.5) < 0.02


def test_single_segments_start_at_sentences_and_fit():
    documents = _documents(4)
    table = single_instances(documents, 128, 0.1, random.Random(3))
    a_start, a_len, _, b_len, label = _ranges(table)
    assert np.all(b_len == 0) and np.all(label == 0) and np.all((a_len >= 1) & (a_len <= 126))
    assert set(a_start.tolist()) <= set(documents.sentence_bounds)
    assert np.array_equal(_document_of(documents, a_start), _document_of(documents, a_start + a_len - 1))


def test_packing_fills_rows_with_runs_and_separators():
    documents = _documents(5)
    table = packed_instances(documents, 128, np.random.default_rng(4))
    pieces = table.pieces
    assert np.all(table.a_len <= 126) and table.a_len.mean() > 110 and np.all(table.b_len == 0)
    covered = 0
    for row in range(len(table)):
        own = pieces[pieces[:, ROW] == row]
        assert own[0, COLUMN] == 1 and np.all(own[1:, COLUMN] == own[:-1, COLUMN] + own[:-1, LENGTH])
        assert own[:, LENGTH].sum() == table.a_len[row]
        text = own[own[:, SOURCE] != documents.separator]
        covered += text[:, LENGTH].sum()
    assert covered == documents.separator  # every token once per pass, no sentence cut


def test_shuffle_and_batches_keep_every_instance():
    documents = _documents(6)
    table = pair_instances(documents, 128, 0.1, "nsp", random.Random(4), np.random.default_rng(5))
    shuffled = table.shuffled(np.random.default_rng(6))
    rows = sorted(zip(*(x.tolist() for x in _ranges(table))))
    assert sorted(zip(*(x.tolist() for x in _ranges(shuffled)))) == rows
    assert list(zip(*(x.tolist() for x in _ranges(shuffled)))) != list(zip(*(x.tolist() for x in _ranges(table))))
    batches = list(shuffled.batches(300))
    assert [len(b) for b in batches[:-1]] == [300] * (len(batches) - 1)
    joined = InstanceTable.concatenate(batches)
    assert all(np.array_equal(getattr(joined, k), getattr(shuffled, k)) for k in ("a_len", "b_len", "label", "pieces"))


@pytest.fixture(scope="module")
def corpus_documents(tmp_path_factory):
    """The default corpus as TokenDocuments, with a SentencePiece vocab of the default size trained on it."""
    from hvd_pretrain.corpus import default_corpus
    from hvd_pretrain.data.documents import read_documents
    from hvd_pretrain.data.token_documents import tokenize_documents
    from hvd_pretrain.vocab import load_tokenizer, train_sentencepiece

    vocab = str(tmp_path_factory.mktemp("vocab"))
    train_sentencepiece([default_corpus()], vocab, 8000, num_threads=1)
    return tokenize_documents(list(read_documents([default_corpus()])), load_tokenizer(vocab))


def _packed_pairs(table, documents):
    """Check the layout of packed-pair rows and return their pairs: (row, a_start, a_len, b_start, b_len) arrays.

    Row r holds A1 [SEP] B1 [SEP] A2 [SEP] B2 ... B_n (then the row's own [SEP]): pieces back to back from
    column 1, one b_span per B covering it and the [SEP] after it.
    """
    sep = documents.separator
    piece_bounds = np.searchsorted(table.pieces[:, ROW], np.arange(len(table) + 1))
    span_bounds = np.searchsorted(table.b_spans[:, ROW], np.arange(len(table) + 1))
    assert np.all(np.diff(table.pieces[:, ROW]) >= 0) and np.all(np.diff(table.b_spans[:, ROW]) >= 0)
    pairs = []
    for row in range(len(table)):
        own = table.pieces[piece_bounds[row]:piece_bounds[row + 1]]
        spans = table.b_spans[span_bounds[row]:span_bounds[row + 1]]
        assert own[0, COLUMN] == 1 and np.all(own[1:, COLUMN] == own[:-1, COLUMN] + own[:-1, LENGTH])
        assert own[:, LENGTH].sum() == table.a_len[row] and table.b_len[row] == 0
        is_sep = own[:, SOURCE] == sep
        assert len(own) % 4 == 3 and np.array_equal(is_sep, np.arange(len(own)) % 2 == 1)
        assert np.all(own[is_sep, LENGTH] == 1)
        a, b = own[0::4], own[2::4]
        assert np.array_equal(spans[:, COLUMN], b[:, COLUMN])
        assert np.array_equal(spans[:, SPAN_LENGTH], b[:, LENGTH] + 1)
        pairs += [(row, *x) for x in zip(a[:, SOURCE], a[:, LENGTH], b[:, SOURCE], b[:, LENGTH])]
    return tuple(np.array(x, dtype=np.int64) for x in zip(*pairs))


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_packed_pairs_on_the_corpus_keep_every_pair_true_to_its_rows_label(corpus_documents, objective):
    documents = corpus_documents
    tables, plain = [], []
    for seed in range(3):  # three passes, as dupe_factor=3 would make
        tables.append(packed_pair_instances(documents, 128, 0.1, objective, random.Random(seed),
                                            np.random.default_rng(seed)))
        plain.append(pair_instances(documents, 128, 0.1, objective, random.Random(seed), np.random.default_rng(seed)))
        # the same pairs, each packed exactly once
        row, a_start, a_len, b_start, b_len = _packed_pairs(tables[-1], documents)
        assert sorted(zip(a_start.tolist(), a_len.tolist(), b_start.tolist(), b_len.tolist(),
                          tables[-1].label[row].tolist())) == sorted(zip(*(x.tolist() for x in _ranges(plain[-1]))))
    table, plain = InstanceTable.concatenate(tables), InstanceTable.concatenate(plain)
    row, a_start, a_len, b_start, b_len = _packed_pairs(table, documents)
    label = table.label[row]  # every pair carries its row's label
    a_doc, b_doc = _document_of(documents, a_start), _document_of(documents, b_start)
    assert np.array_equal(a_doc, _document_of(documents, a_start + a_len - 1))
    assert np.array_equal(b_doc, _document_of(documents, b_start + b_len - 1))
    a_end, b_end = a_start + a_len, b_start + b_len
    whole = a_len + b_len < 125  # a truncated pair may have lost tokens at the seam
    in_order = (a_doc == b_doc) & np.where(whole, b_start == a_end, b_start >= a_end)
    swapped = (a_doc == b_doc) & np.where(whole, a_start == b_end, a_start >= b_end)
    if objective == "nsp":
        assert np.all(in_order[label == 0]) and np.all(a_doc[label == 1] != b_doc[label == 1])
    else:
        assert np.all(in_order[label == 0]) and np.all(swapped[label == 1])
    assert whole.mean() > 0.8
    row_cost = np.bincount(row, weights=a_len + b_len + 2, minlength=len(table))  # each pair and its two [SEP]s
    assert np.array_equal(table.num_tokens, 1 + row_cost) and table.num_tokens.max() <= 128
    assert len(table) > 8000 and abs(table.label.mean() - 0.5) < 0.02
    pairs_per_row = np.bincount(row, minlength=len(table))
    assert pairs_per_row.min() >= 1 and pairs_per_row.mean() > 1.4
    by_label = [pairs_per_row[table.label == value].mean() for value in (0, 1)]
    assert abs(by_label[0] - by_label[1]) < 0.1 * max(by_label)  # the count of [SEP]s does not tell the label
    assert table.num_tokens.mean() > 1.35 * plain.num_tokens.mean()  # seq 128: ~60 real tokens unpacked


def test_packed_pairs_assemble_to_alternating_segments_with_word_starts():
    documents = _documents(7)
    documents.tokens[:-1] += 100  # token i has id 100 + i: no text token has the id of [SEP]
    documents.word_starts[:] = False  # so that only segment starts are word starts
    table = packed_pair_instances(documents, 128, 0.1, "nsp", random.Random(6), np.random.default_rng(7))
    seq = assemble(table, documents, 128, cls_id=-1, sep_id=SEP, pad_id=-2)
    row, a_start, a_len, b_start, b_len = _packed_pairs(table, documents)
    for r in range(len(table)):
        n = int(seq.num_tokens[r])
        ids = seq.input_ids[r]
        assert ids[0] == -1 and ids[n - 1] == SEP and np.all(ids[n:] == -2)
        assert np.array_equal(seq.input_mask[r], np.arange(128) < n)
        expected_ids, expected_segments = [-1], [0]
        for k in np.flatnonzero(row == r):
            expected_ids += list(range(100 + a_start[k], 100 + a_start[k] + a_len[k])) + [SEP]
            expected_ids += list(range(100 + b_start[k], 100 + b_start[k] + b_len[k])) + [SEP]
            expected_segments += [0] * (a_len[k] + 1) + [1] * (b_len[k] + 1)
        assert ids[:n].tolist() == expected_ids and seq.segment_ids[r].tolist() == expected_segments + [0] * (128 - n)
        seps = np.flatnonzero(ids[:n] == SEP)
        assert np.flatnonzero(seq.word_starts[r]).tolist() == [1] + (seps[:-1] + 1).tolist()
        assert np.array_equal(seq.candidates[r], (np.arange(128) > 0) & (np.arange(128) < n) & (ids != SEP))
        assert seq.labels[r, 0] == table.label[r]


def test_packed_pairs_survive_shuffle_batches_and_concatenate():
    documents = _documents(8)
    table = packed_pair_instances(documents, 128, 0.1, "sop", random.Random(8), np.random.default_rng(8))
    shuffled = table.shuffled(np.random.default_rng(9))
    joined = InstanceTable.concatenate(list(shuffled.batches(100)))
    assert all(np.array_equal(getattr(joined, k), getattr(shuffled, k))
               for k in ("a_len", "b_len", "label", "pieces", "b_spans"))
    _packed_pairs(joined, documents)  # layout intact after renumbering

    def rows(t):
        seq = assemble(t, documents, 128, 1, SEP, 0)
        return sorted(zip(map(bytes, seq.input_ids), map(bytes, seq.segment_ids), seq.labels[:, 0].tolist()))

    assert rows(joined) == rows(table)
    mixed = InstanceTable.concatenate([table, pair_instances(documents, 128, 0.1, "sop", random.Random(1),
                                                             np.random.default_rng(1))])
    assert len(mixed.b_spans) == len(table.b_spans) and mixed.num_pairs == table.num_pairs + len(mixed) - len(table)
