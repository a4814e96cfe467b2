"""WordPiece encoding of many texts at once, each space-separated piece encoded only once.

BERT's tokenization never joins anything across an ASCII space: the normalizer
works character by character (control characters, Chinese characters, accents,
lower case), the pre-tokenizer splits at every whitespace, and WordPiece then
works word by word. So a text's ids are the concatenation of the ids of its
space-separated pieces, and a corpus, where most pieces repeat, needs each
distinct piece encoded once. The encoding itself stays with HF `tokenizers`:
new pieces are joined into a few long texts, encoded in one batch, and their
tokens handed back to each piece by character offset.
"""

import numpy as np

from hvd_pretrain.ragged import ragged_index

GROUP = 256  # new pieces per text given to the tokenizer
MAX_PIECES = 500_000  # the cache starts afresh beyond this many pieces (a large corpus has many rare ones)


class PieceCache:
    def __init__(self, encode_batch_with_offsets):
        """encode_batch_with_offsets(texts) -> [(ids, token start offsets)] for each text."""
        self._encode = encode_batch_with_offsets
        self._clear()

    def _clear(self):
        self._row = {}  # piece -> its row in the tables
        self._table_ids = np.zeros(0, dtype=np.int32)  # the ids of every known piece, back to back
        self._table_start = np.zeros(1, dtype=np.int64)  # row r: _table_ids[_table_start[r]:_table_start[r + 1]]

    def __len__(self):
        return len(self._row)

    def encode_flat(self, texts):
        """(ids of all texts back to back as int32, number of ids of each text as int64)."""
        if not texts:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        pieces = " ".join(texts).split(" ")
        new = sorted(set(pieces).difference(self._row))
        if new and len(self._row) + len(new) > MAX_PIECES:
            self._clear()
            new = sorted(set(pieces))
        if new:
            self._learn(new)
        rows = np.fromiter(map(self._row.__getitem__, pieces), dtype=np.int64, count=len(pieces))
        starts, lengths = self._table_start[rows], np.diff(self._table_start)[rows]
        ids = self._table_ids[ragged_index(starts, lengths)]
        pieces_per_text = np.fromiter((t.count(" ") + 1 for t in texts), dtype=np.int64, count=len(texts))
        first_piece = np.cumsum(pieces_per_text) - pieces_per_text
        return ids, np.add.reduceat(lengths, first_piece)

    def _learn(self, new):
        groups = [new[i:i + GROUP] for i in range(0, len(new), GROUP)]
        encoded = self._encode([" ".join(group) for group in groups])
        counts = []
        ids = []
        for group, (group_ids, token_starts) in zip(groups, encoded):
            piece_starts = np.cumsum([0] + [len(p) + 1 for p in group[:-1]])
            owner = np.searchsorted(piece_starts, np.asarray(token_starts, dtype=np.int64), side="right") - 1
            counts.append(np.bincount(owner, minlength=len(group)))
            ids.append(np.asarray(group_ids, dtype=np.int32))
        counts = np.concatenate(counts)
        self._table_ids = np.concatenate([self._table_ids] + ids)
        self._table_start = np.concatenate([self._table_start, self._table_start[-1] + np.cumsum(counts)])
        base = len(self._row)
        self._row.update(zip(new, range(base, base + len(new))))

