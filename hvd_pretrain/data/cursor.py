"""Where the training data stream stands: exact resume, and the rest of an epoch dealt to a new world.

Epoch order. Epoch e reads every record of the data once, shard after shard in a
permutation of the shards seeded with (seed, e); inside a shard records keep the
order `hvd-data create` wrote (already shuffled across documents). A record's
place in that order is its epoch index, 0 .. N-1.

Dealing. A deal hands the epoch indices still to read (`deal`, ranges in epoch
order) to `world` ranks: each rank gets a contiguous run of T // world of the T
examples. The T % world left over (fewer than the world size) are not read in
this epoch and are counted in `skipped`. An epoch starts with a deal of [0, N).

Position. Every rank consumes its run at the same pace (micro-batches of the
same size, the same number per optimizer step), so one number, `consumed`, says
where every rank stands in its run. When the runs are used up the next epoch
starts with a full deal to the same world.

Mixing. The epoch order is cut into blocks of `block` places; place p of block
b reads record b*block + perm_b[p % block] of the shard order, perm_b a
permutation seeded with (seed, epoch, b). Ranks read their runs' places in
order, so what a rank has used is always a prefix of its run, and a resume at
`consumed` costs at most one block's read (records are found by seeking over
record headers, see stream.ShardIndex). The mixing does not depend on the
world size.

Restarts. The same world continues at `consumed` exactly. Another world (a
restart with fewer GPUs, an elastic change) takes the unread rest of every
rank's run and deals it again, so each example of the epoch is still read once.

Reference: the exact-resume requirement follows the "skip to the sample" resume
of HF `accelerate`/`datasets` (`skip_first_batches`), here in O(1) instead of by
reading and dropping the batches already seen.
"""

import dataclasses
import hashlib
import os

import numpy as np

from hvd_pretrain.errors import DataError

DEFAULT_BLOCK = 10000


@dataclasses.dataclass(frozen=True)
class DataCursor:
    """The stream position shared by all ranks (saved in a checkpoint's state.json as `data_cursor`).

    fingerprint: which data (shard names and record counts); seed: the run's --seed.
    examples: N, records per epoch. epoch: the current epoch (0-based). deal: ((start, end), ...) epoch
    indices dealt at the last deal. world: ranks of that deal. consumed: examples each rank has used
    of its run. skipped: examples of this epoch no deal could place (each deal leaves < world).
    """

    fingerprint: str
    seed: int
    examples: int
    epoch: int
    deal: tuple
    world: int
    consumed: int = 0
    skipped: int = 0

    @classmethod
    def start(cls, counts, names, seed, world, epoch=0):
        """Epoch `epoch`'s first deal of `counts` (records per shard, in `names` order) to `world` ranks."""
        total = int(sum(counts))
        if total == 0:
            raise DataError("every shard of the data is empty (%s); re-create the data from more text"
                            % ", ".join(os.path.basename(n) for n in list(names)[:3]))
        if total < world:
            raise DataError("the data has %d records, fewer than the %d ranks; make more data or use fewer ranks"
                            % (total, world))
        return cls(fingerprint(names, counts), int(seed), total, int(epoch), ((0, total),), int(world),
                   0, total % world)

    @property
    def run_length(self):
        """Examples in each rank's run of the current deal."""
        return _total(self.deal) // self.world

    def run_of(self, rank):
        """Rank `rank`'s run: epoch-index ranges in order (rank r takes places [r*L, (r+1)*L) of the deal)."""
        length = self.run_length
        return places(self.deal, rank * length, (rank + 1) * length)

    def advanced(self, examples):
        """The cursor after every rank used `examples` more examples."""
        consumed, epoch, deal, skipped = self.consumed + int(examples), self.epoch, self.deal, self.skipped
        length = self.run_length
        while consumed >= length:
            consumed -= length
            epoch, deal, skipped = epoch + 1, ((0, self.examples),), self.examples % self.world
            length = self.examples // self.world
        return dataclasses.replace(self, epoch=epoch, deal=deal, consumed=consumed, skipped=skipped)

    def redealt(self, world):
        """The same position for a world of `world` ranks: the unread rest of every run, dealt again."""
        if world == self.world:
            return self
        rest = []
        length = self.run_length
        for rank in range(self.world):
            rest.extend(places(self.deal, rank * length + self.consumed, (rank + 1) * length))
        rest = _merged(rest)
        total = _total(rest)
        if total < world:  # nothing left to deal fairly: on to the next epoch
            return dataclasses.replace(self, world=world, consumed=0).advanced_epoch()
        return dataclasses.replace(self, deal=tuple(rest), world=int(world), consumed=0,
                                   skipped=self.skipped + total % world)

    def advanced_epoch(self):
        """The cursor at the start of the next epoch (same world)."""
        return dataclasses.replace(self, epoch=self.epoch + 1, deal=((0, self.examples),), consumed=0,
                                   skipped=self.examples % self.world)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["deal"] = [list(r) for r in self.deal]
        return d

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(str(d["fingerprint"]), int(d["seed"]), int(d["examples"]), int(d["epoch"]),
                       tuple((int(a), int(b)) for a, b in d["deal"]), int(d["world"]), int(d.get("consumed", 0)),
                       int(d.get("skipped", 0)))
        except (KeyError, TypeError, ValueError):
            return None


def fingerprint(names, counts):
    """sha256 over shard base names and record counts: the data a cursor belongs to."""
    h = hashlib.sha256()
    for name, count in zip(names, counts):
        h.update(("%s\t%d\n" % (os.path.basename(name), int(count))).encode())
    return h.hexdigest()[:16]


def epoch_layout(counts, seed, epoch):
    """(order, starts): the shard permutation of `epoch` and each ordered shard's first epoch index."""
    order = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), 0x5eed]))
                                ).permutation(len(counts))
    sizes = np.asarray(counts, dtype=np.int64)[order]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, np.int64)
    return order, starts


def segments(ranges, counts, seed, epoch):
    """[(shard index, first record, end record)] reading epoch-index `ranges` of `epoch`, in order."""
    order, starts = epoch_layout(counts, seed, epoch)
    out = []
    for lo, hi in ranges:
        at = int(np.searchsorted(starts, lo, side="right")) - 1
        while lo < hi:
            shard = int(order[at])
            first = lo - int(starts[at])
            end = min(int(counts[shard]), first + (hi - lo))
            if end > first:
                out.append((shard, first, end))
            lo += end - first
            at += 1
    return out


def block_permutation(seed, epoch, block_index, size):
    """Which record of epoch block `block_index` each of its `size` places reads (a permutation)."""
    key = [int(seed), int(epoch), int(block_index), 0xb10c]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key))).permutation(size)


def _total(ranges):
    return sum(b - a for a, b in ranges)


def places(ranges, lo, hi):
    """Places [lo, hi) of the concatenation of `ranges`, as ranges."""
    out, at = [], 0
    for a, b in ranges:
        n = b - a
        s, e = max(lo - at, 0), min(hi - at, n)
        if s < e:
            out.append((a + s, a + e))
        at += n
        if at >= hi:
            break
    return out


def _merged(ranges):
    out = []
    for a, b in ranges:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        elif b > a:
            out.append((a, b))
    return out
