"""The held-out evaluation split: whole documents, chosen by a hash of their text and the seed.

A document's id is a 64-bit BLAKE2b hash of its sentences (as read, one per line)
keyed with the data seed. A document is held out when its id is below a
threshold: `fraction * 2**64` for --eval_fraction, or the N-th smallest id of the
input for --eval_documents (found by one reading pass that only hashes). The
choice therefore depends on the text and the seed alone, never on the number of
workers or shards; duplicated documents fall on the same side.

Held-out documents never reach a training shard, and NSP never borrows a
random-next segment across the split: the training workers drop them from their
own chunk and from the donor documents they read; their text is written to
eval/documents/ and made into eval shards by a second, ordinary run of data
creation over those files, statically masked with the data seed and
dupe_factor 1, so eval numbers are the same across runs, restarts and world sizes.
"""

import hashlib
import os

from hvd_pretrain.errors import DataError

EVAL_DIR = "eval"
EVAL_DOCUMENTS_DIR = "documents"  # in EVAL_DIR: the held-out text, one file per input chunk
ID_SPACE = 1 << 64


def document_id(seed, sentences):
    """64-bit id of a document (a list of sentence strings), keyed with the seed."""
    h = hashlib.blake2b(digest_size=8, key=str(int(seed)).encode())
    h.update("\n".join(sentences).encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def enabled(config):
    return bool(config.eval_fraction or config.eval_documents)


def threshold(config, files):
    """Documents with an id below this are held out; None when the data has no eval split."""
    if config.eval_fraction:
        return int(config.eval_fraction * ID_SPACE)
    if not config.eval_documents:
        return None
    from hvd_pretrain.data.documents import read_documents

    ids = sorted(document_id(config.seed, doc) for doc in read_documents(files, max_line_bytes=config.max_line_bytes))
    if config.eval_documents >= len(ids):
        raise DataError("--eval_documents=%d holds out every document: the input has %d; ask for fewer"
                        % (config.eval_documents, len(ids)))
    return ids[config.eval_documents - 1] + 1


def hold_out(documents, seed, cutoff):
    """(training documents, held-out documents, held-out ids) of a list of documents."""
    if cutoff is None:
        return documents, [], []
    train, held, ids = [], [], []
    for doc in documents:
        key = document_id(seed, doc)
        if key < cutoff:
            held.append(doc)
            ids.append(key)
        else:
            train.append(doc)
    return train, held, ids


def eval_text_path(out_dir, chunk_index):
    return os.path.join(out_dir, EVAL_DIR, EVAL_DOCUMENTS_DIR, "chunk-%05d.txt" % chunk_index)


def write_documents(path, documents):
    """Documents in the input format (a sentence per line, a blank line after each), atomically."""
    from hvd_pretrain.rundir import write_text_atomic

    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text_atomic(path, "".join("\n".join(doc) + "\n\n" for doc in documents))


def ids_digest(ids):
    """sha256 of the sorted held-out ids: equal iff the same documents were held out."""
    h = hashlib.sha256()
    for key in sorted(ids):
        h.update(b"%016x\n" % key)
    return h.hexdigest()


def eval_config(config):
    """The DataConfig of the eval shards: static masking with the same seed, one pass, no further split."""
    return config.replace(masking="static", dupe_factor=1, num_shards=0, eval_fraction=0.0, eval_documents=0)


def make_eval_shards(out_dir, vocab_dir, config, results, num_workers):
    """Eval shards in out_dir/eval from the held-out text of every chunk; returns the manifest's "eval" entry."""
    from hvd_pretrain.data.create import create_pretraining_data

    ids = [key for r in results for key in r.get("eval_ids", ())]
    files = [eval_text_path(out_dir, r["index"]) for r in results if r.get("eval_ids")]
    if not ids:
        raise DataError("the eval split held out no document (--eval_fraction=%g, --eval_documents=%d); raise it"
                        % (config.eval_fraction, config.eval_documents))
    eval_dir = os.path.join(out_dir, EVAL_DIR)
    try:
        manifest = create_pretraining_data(files, vocab_dir, eval_dir, eval_config(config), num_workers=num_workers)
    except DataError as e:
        raise DataError("eval split (%d held-out documents): %s; raise --eval_fraction or --eval_documents"
                        % (len(ids), e)) from None
    return {"dir": EVAL_DIR, "documents": len(ids), "document_ids_sha256": ids_digest(ids),
            "num_instances": manifest["num_instances"], "num_shards": manifest["num_shards"],
            "fraction": config.eval_fraction, "requested_documents": config.eval_documents,
            "masking": "static", "seed": config.seed}
