"""Google's sentence loop over token ranges: which runs of sentences form each instance.

google-research/bert's create_instances_from_document walks a document's sentences,
gathering them up to a target length (max_tokens, or with short_seq_prob a random
shorter one), then splits the group at a random sentence into A and B. These loops do
the same on integer sentence and document bounds (a TokenDocuments' layout) and return
flat lists of token ranges, before truncation; instances.py turns them into tables.
"""

from bisect import bisect_left

from hvd_pretrain.data.negatives import PairSources


def _target_length(max_tokens, short_seq_prob, rand):
    """A document's target length: max_tokens, or with probability short_seq_prob a random shorter one."""
    if rand() < short_seq_prob:
        return 2 + int(rand() * (max_tokens - 1))
    return max_tokens


def plan_pairs(doc_bounds, sent_bounds, max_tokens, short_seq_prob, nsp, sop, rand, sources=None):
    """Untruncated pairs as a flat list: a_start, a_len, b_start, b_len, label for each instance.

    Walks documents 0..sources.num_own-1 (all by default); random-next segments come from
    `sources.other_document` and labels from `sources.labels` (see negatives.py)."""
    sources = sources or PairSources()
    labels = sources.labels
    out = []
    num_docs = len(doc_bounds) - 1
    random_next_possible = nsp and num_docs > 1
    for d in range(sources.own(num_docs)):
        first, last = doc_bounds[d], doc_bounds[d + 1]
        target = _target_length(max_tokens, short_seq_prob, rand)
        c0 = first
        while c0 < last:
            t0 = sent_bounds[c0]
            # the group: sentences c0 .. c1-1, up to the first that reaches the target, or the document's end
            c1 = bisect_left(sent_bounds, t0 + target, c0 + 1, last)
            t1 = sent_bounds[c1]
            in_order_ok = c1 - c0 >= 2 or t1 - t0 >= 2  # two sentences, or one of two tokens to cut
            label = labels.take(rand, zero_ok=in_order_ok, one_ok=random_next_possible) if nsp else 0
            if label is None:
                c0 = c1
                continue
            random_next = nsp and label == 1
            following = c1
            if c1 - c0 >= 2:
                a_end = c0 + 1 + int(rand() * (c1 - c0 - 1))
                a_start, a_stop = t0, sent_bounds[a_end]
                if random_next:
                    following = a_end  # the unused sentences start the next group
                else:
                    b_start, b_stop = a_stop, t1
            elif random_next:
                a_start, a_stop = t0, t1
            elif in_order_ok:
                cut = t0 + 1 + int(rand() * (t1 - t0 - 1))
                a_start, a_stop, b_start, b_stop = t0, cut, cut, t1
            else:
                c0 = following
                continue
            if random_next:
                want = max(1, target - (a_stop - a_start))
                other = sources.other_document(d, num_docs, rand)
                o0, o1 = doc_bounds[other], doc_bounds[other + 1]
                s = o0 + int(rand() * (o1 - o0))
                e = bisect_left(sent_bounds, sent_bounds[s] + want, s + 1, o1)
                b_start, b_stop = sent_bounds[s], sent_bounds[e]
            if sop and labels.take(rand) == 1:
                a_start, a_stop, b_start, b_stop, label = b_start, b_stop, a_start, a_stop, 1
            out += (a_start, a_stop - a_start, b_start, b_stop - b_start, label)
            c0 = following
    sources.made += len(out) // 5
    if sources.last_pass and labels.pending is not None and sources.made > 1 and out and out[-1] != labels.pending:
        del out[-5:]  # the first half of an open label block: without it, labels are exactly balanced
        sources.made -= 1
    return out


def plan_singles(doc_bounds, sent_bounds, max_tokens, short_seq_prob, rand):
    """Single segments as a flat list: start, length (untruncated) for each instance."""
    out = []
    for d in range(len(doc_bounds) - 1):
        first, last = doc_bounds[d], doc_bounds[d + 1]
        target = _target_length(max_tokens, short_seq_prob, rand)
        c0 = first
        while c0 < last:
            t0 = sent_bounds[c0]
            c1 = bisect_left(sent_bounds, t0 + target, c0 + 1, last)
            out += (t0, sent_bounds[c1] - t0)
            c0 = c1
    return out
