"""Where NSP's random-next segments come from, and balanced pair labels.

google-research/bert's create_pretraining_data.py draws the "random next" segment B
from a random document of `all_documents`, the whole input held in memory (retrying up
to 10 times to avoid the current document). Here the input is cut into chunks that
worker processes handle independently, so each chunk also reads a bounded sample of
*donor* documents from other chunks (`donor_ranges`, `read_donors`): the random
document is then one of the chunk's other documents with probability equal to the
chunk's share of the input bytes, and a donor document otherwise (`PairSources`).
Donors are chosen by (seed, chunk index) alone, so the shards stay the same for any
number of workers. A chunk holding a single document still gets random-next pairs; a
whole input holding a single document cannot, and is refused (`one_document_error`).

Labels are drawn in blocks of two, one of each label in random order (`LabelStream`),
and an unfinished last block is dropped, so every chunk's labels are exactly balanced,
where independent coins drift by about sqrt(n) / 2 (±3.5% on 200 instances).
"""

from dataclasses import dataclass, field

import numpy as np

from hvd_pretrain.data.documents import ReadStats, iter_documents, next_document_start
from hvd_pretrain.errors import DataError
from hvd_pretrain.data.token_documents import TokenDocuments

DONOR_BYTES = 256 << 10  # text read from other chunks per chunk, at most (about 50k tokens) ...
DONOR_MIN_BYTES = 32 << 10  # ... and at least; in between, a quarter of the chunk's own size
DONOR_CHUNKS = 8  # other chunks sampled per chunk
DONOR_STREAM = 0x646F6E6F72  # keeps the donor choice apart from the chunk's other random streams


class LabelStream:
    """Pair labels in blocks of two: one 0 and one 1 per block, in random order.

    `take` returns the next label, or None when that label cannot be made for the current
    group; the label then stays next in line, so skipped groups do not unbalance the rest.
    """

    def __init__(self):
        self.pending = None  # the second label of the current block

    def take(self, rand, zero_ok=True, one_ok=True):
        fresh = self.pending is None
        if fresh:
            label = int(rand() < 0.5)
            self.pending = 1 - label
        else:
            label, self.pending = self.pending, None
        if (label == 0 and zero_ok) or (label == 1 and one_ok):
            return label
        self.pending = None if fresh else label  # a fresh block is dropped whole: still balanced
        return None


@dataclass
class PairSources:
    """The documents pair planning walks and draws from.

    num_own: documents 0..num_own-1 make instances (None: all); the rest are donors, used
    only as random-next segments. local_share: probability that a random-next document is
    one of the walked documents (when there are both kinds). labels: the chunk's label stream,
    shared by its dupe_factor passes. At the end of the last pass an instance left without
    the other half of its label block is dropped, so a chunk's labels are exactly half and
    half (unless it has a single instance).
    """

    num_own: int = None
    local_share: float = 1.0
    labels: LabelStream = field(default_factory=LabelStream)
    last_pass: bool = True  # at its end, drop an instance whose label has no partner yet
    made: int = 0  # instances planned so far (a lone instance is never dropped)

    def own(self, num_documents):
        return num_documents if self.num_own is None else self.num_own

    def other_document(self, d, num_documents, rand):
        """A document other than d for a random-next segment (None when there is none)."""
        own = self.own(num_documents)
        donors = num_documents - own
        if donors and (own < 2 or rand() >= self.local_share):
            return own + int(rand() * donors)
        if own < 2:
            return None
        other = int(rand() * (own - 1))
        return other + (other >= d)


def segments_bytes(segments):
    return sum(end - start for _, start, end in segments)


def donor_budget(own_bytes):
    """Bytes of donor text for a chunk of `own_bytes`: a quarter of it, within DONOR_MIN_BYTES..DONOR_BYTES."""
    return min(DONOR_BYTES, max(DONOR_MIN_BYTES, own_bytes // 4))


def donor_ranges(chunks, index, seed):
    """Where to read donor documents of chunk `index` from, best first: [(path, start, end, budget)].

    Up to DONOR_CHUNKS other chunks of the whole plan, in a random order fixed by (seed, index),
    each from a random document start, for an equal share of `donor_budget`; then the remaining
    chunks from their starts, for `read_donors` to fall back on when the sampled ones hold no
    document. `end` is the end of the chunk's segment.
    """
    others = [j for j in range(len(chunks)) if j != index]
    if not others:
        return []
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), DONOR_STREAM]))
    order = [others[k] for k in rng.permutation(len(others)).tolist()]
    budget = donor_budget(segments_bytes(chunks[index])) // min(DONOR_CHUNKS, len(others))
    ranges = []
    for rank, j in enumerate(order):
        segments = chunks[j]
        offset = int(rng.integers(0, segments_bytes(segments))) if rank < DONOR_CHUNKS else 0
        for path, start, end in segments:
            if offset < end - start:
                begin = next_document_start(path, start + offset) if offset else start
                ranges.append((path, begin if begin < end else start, end, budget))
                break
            offset -= end - start
    return ranges


def read_donors(ranges, max_line_bytes, read=iter_documents):
    """Whole documents from the donor ranges, from each until its budget of text is reached: all of
    the first DONOR_CHUNKS ranges, and, only when those hold none, the following ones until one does.
    A document is cut only past 4x the budget, so donor documents end where the input's do (a cut
    document would give shorter random-next segments than true continuations, a label cue).
    read: the document reader (`iter_documents`, or a segmenter's that attaches line references)."""
    documents = []
    for rank, (path, start, end, budget) in enumerate(ranges):
        if rank >= DONOR_CHUNKS and documents:
            break
        taken = 0
        for document in read(path, start, min(end, start + 4 * budget), ReadStats(), max_line_bytes):
            documents.append(document)
            taken += sum(len(sentence) + 1 for sentence in document)
            if taken >= budget:
                break
    return documents


def join_documents(own, donors):
    """One TokenDocuments: `own`'s documents first, then the donors' (a single [SEP] at the end)."""
    if donors.num_documents == 0:
        return own
    base, sentences = own.separator, len(own.sentence_bounds) - 1
    return TokenDocuments(
        tokens=np.concatenate([own.tokens[:-1], donors.tokens]),
        word_starts=np.concatenate([own.word_starts[:-1], donors.word_starts]),
        sentence_bounds=own.sentence_bounds + [base + b for b in donors.sentence_bounds[1:]],
        document_bounds=own.document_bounds + [sentences + b for b in donors.document_bounds[1:]],
        separator=base + donors.separator)


def one_document_error(paths):
    return DataError("--sentence_objective=nsp needs at least two documents (a blank line between documents) "
                     "for its random-next pairs, and the input (%s) holds only one; add documents or use "
                     "--sentence_objective=sop" % ",".join(paths))
