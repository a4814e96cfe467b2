"""Weighted mixing of corpora: `--data_dir=wiki:0.7,books:0.3`.

Each corpus (a data dir made by `hvd-data create`) keeps its own DataCursor
(cursor.py): its own epochs, its own exact position. Which corpus the next
example of a rank comes from is decided without randomness, as Megatron-LM's
blended datasets do: the k-th example (k = 0, 1, ...) is taken from the corpus
whose share falls furthest behind its weight,

    argmax_i  w_i * (k + 1) - drawn_i

so after n examples every corpus has within one example of w_i * n. The choice
depends only on the weights and the count, so every rank draws the same corpus
sequence, a resume continues it from the per-corpus counts saved with the
checkpoint, and a world-size change re-deals each corpus's epoch on its own.
"""

import dataclasses
import os

import numpy as np

from hvd_pretrain.data.cursor import DataCursor
from hvd_pretrain.errors import DataError


def parse_mixture(spec):
    """[(data dir, weight)] of "DIR:W,DIR:W,..." (weights normalised to sum 1), or None without weights.

    A plain comma-separated list of dirs or files (no ":W") is not a mixture. Raises DataError naming
    the part that is wrong.
    """
    parts = [p.strip() for p in str(spec or "").split(",") if p.strip()]
    if not parts or not any(_weight_of(p) is not None for p in parts):
        return None
    out = []
    for part in parts:
        weight = _weight_of(part)
        if weight is None:
            raise DataError("--data_dir=%s mixes weighted and unweighted parts (%r); give every data dir a weight,"
                            " e.g. wiki:0.7,books:0.3" % (spec, part))
        directory = part.rsplit(":", 1)[0]
        if not os.path.isdir(directory):
            raise DataError("--data_dir: %s (in %s) is not a directory; give data dirs made by hvd-data create"
                            % (directory, spec))
        if not weight > 0:
            raise DataError("--data_dir: the weight of %s must be > 0, got %s" % (directory, part.rsplit(":", 1)[1]))
        out.append((directory, weight))
    if len({os.path.realpath(d) for d, _ in out}) != len(out):
        raise DataError("--data_dir=%s names a data dir twice; give each corpus once with its weight" % spec)
    total = sum(w for _, w in out)
    return [(d, w / total) for d, w in out]


def _weight_of(part):
    if ":" not in part:
        return None
    try:
        return float(part.rsplit(":", 1)[1])
    except ValueError:
        return None


def choose(weights, drawn, n):
    """The corpus of each of the next `n` examples, and the draws after them.

    weights: [C] floats summing to 1; drawn: [C] examples taken so far. Returns (choices int [n], drawn [C]).
    """
    weights = np.asarray(weights, dtype=np.float64)
    drawn = np.array(drawn, dtype=np.int64)
    out = np.empty(int(n), dtype=np.int64)
    k = int(drawn.sum())
    for j in range(int(n)):
        i = int(np.argmax(weights * (k + 1) - drawn))
        out[j] = i
        drawn[i] += 1
        k += 1
    return out, drawn


@dataclasses.dataclass(frozen=True)
class MixtureCursor:
    """The position in a weighted mixture: one DataCursor per corpus and the examples drawn from each.

    names: the corpora's data dirs; weights: normalised; cursors: DataCursor per corpus; drawn: examples
    each rank has taken from each corpus (the same on every rank); seen: examples all ranks together
    have taken from each corpus (over every world size the run had).
    """

    names: tuple
    weights: tuple
    cursors: tuple
    drawn: tuple
    seen: tuple = ()

    @classmethod
    def start(cls, names, weights, sources, seed, world):
        """sources: [(files, counts)] per corpus."""
        cursors = tuple(DataCursor.start(counts, files, seed, world) for files, counts in sources)
        return cls(tuple(names), tuple(float(w) for w in weights), cursors, (0,) * len(cursors), (0,) * len(cursors))

    @property
    def world(self):
        return self.cursors[0].world

    @property
    def seed(self):
        return self.cursors[0].seed

    def advanced(self, examples):
        _, drawn = choose(self.weights, self.drawn, examples)
        taken = [int(d - before) for d, before in zip(drawn, self.drawn)]
        cursors = tuple(c.advanced(n) for c, n in zip(self.cursors, taken))
        seen = tuple(s + n * self.world for s, n in zip(self.seen or (0,) * len(taken), taken))
        return dataclasses.replace(self, cursors=cursors, drawn=tuple(int(d) for d in drawn), seen=seen)

    def corpus_examples(self):
        """{data dir: examples all ranks have taken from it}: the mix as trained so far."""
        return {name: int(n) for name, n in zip(self.names, self.seen or (0,) * len(self.names))}

    def redealt(self, world):
        return dataclasses.replace(self, cursors=tuple(c.redealt(world) for c in self.cursors))

    def matches(self, names, weights, fingerprints, seed):
        """True when this cursor belongs to the same corpora, weights, data and seed."""
        return (list(self.names) == list(names) and np.allclose(self.weights, weights)
                and [c.fingerprint for c in self.cursors] == list(fingerprints) and self.seed == seed)

    def to_dict(self):
        seen = self.seen or (0,) * len(self.names)
        return {"mixture": [{"data_dir": n, "weight": w, "cursor": c.to_dict(), "drawn": d, "seen": e}
                            for n, w, c, d, e in zip(self.names, self.weights, self.cursors, self.drawn, seen)]}

    @classmethod
    def from_dict(cls, d):
        try:
            parts = d["mixture"]
            cursors = tuple(DataCursor.from_dict(p["cursor"]) for p in parts)
            if any(c is None for c in cursors):
                return None
            return cls(tuple(p["data_dir"] for p in parts), tuple(float(p["weight"]) for p in parts), cursors,
                       tuple(int(p["drawn"]) for p in parts), tuple(int(p.get("seen", 0)) for p in parts))
        except (KeyError, TypeError, ValueError):
            return None


def mixed_stream(sources, cursor, rank, block):
    """Yield (key, record) of a rank from a MixtureCursor. sources: [(files, counts)] per corpus.

    Keys' shard field counts shards over all corpora in order, so (seed, epoch, shard, record) stays unique.
    """
    from hvd_pretrain.data.stream import rank_stream

    streams, base = [], 0
    for (files, counts), c in zip(sources, cursor.cursors):
        streams.append(rank_stream(files, counts, c, rank, block, shard_base=base))
        base += len(files)
    drawn = cursor.drawn
    while True:
        choices, drawn = choose(cursor.weights, drawn, 1024)
        for i in choices:
            yield next(streams[i])
