"""One chunk of input text -> one TFRecord shard. Runs in a worker process; no TensorFlow.

A worker holds the tokenizer (and the segmenter, for Chinese whole-word
masking), built once by `init_worker`, then handles any number of chunks. All
randomness of a chunk comes from generators seeded with (seed, chunk index),
so a shard's bytes do not depend on which worker made it or how many there were.

The work on a chunk: read its documents, tokenize them into one flat array,
plan dupe_factor passes of instances as token ranges, shuffle them, then, in
batches of BATCH rows: assemble fixed-length sequences, mask, encode the
Examples and append them to the shard.
"""

import os

import numpy as np

from hvd_pretrain.data import eval_split
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.data.documents import ReadStats, iter_documents
from hvd_pretrain.data.example_encoder import RecordEncoder
from hvd_pretrain.data.instances import (InstanceTable, packed_instances, packed_pair_instances, pair_instances,
                                         python_random, single_instances)
from hvd_pretrain.data.masking import MaskingRule, MaskStats, mask_batch_tokens, mask_sequence
from hvd_pretrain.data.negatives import (PairSources, donor_ranges, join_documents, one_document_error,
                                         read_donors, segments_bytes)
from hvd_pretrain.data.segmenter import load_segmenter
from hvd_pretrain.data.sequences import assemble
from hvd_pretrain.data.tfrecord import TFRecordWriter
from hvd_pretrain.data.token_documents import tokenize_documents

_STATE = {}
BATCH = 2048  # instances assembled, masked and encoded together


def init_worker(vocab_dir, config_dict, counters=None, tokenizer=None, chunks=None):
    """Build this process's tokenizer (unless given), segmenter and masking rule, and let the process
    keep the memory it frees for reuse (see malloc_tuning).

    counters: where progress goes (see `attach_counters`). chunks: the whole chunk plan
    ([[(path, start, end)]] per chunk), where NSP reads donor documents from.
    """
    from hvd_pretrain.data.malloc_tuning import keep_freed_memory
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    keep_freed_memory()
    config = DataConfig.from_dict(config_dict)
    tokenizer = tokenizer or load_tokenizer(vocab_dir)
    segmenter = load_segmenter(config, plan_files(chunks or []))
    rule = MaskingRule(mask_id=tokenizer.mask_id, random_ids=tokenizer.random_ids,
                       max_predictions=config.max_predictions_per_seq, masked_lm_prob=config.masked_lm_prob,
                       whole_word=config.whole_word_masking, ngram_max=config.ngram_max,
                       mask_prob=config.mask_prob, random_prob=config.random_prob)
    _STATE.update(config=config, tokenizer=tokenizer, segmenter=segmenter, rule=rule, encoder=RecordEncoder(),
                  chunks=chunks or [])
    attach_counters(counters)


def plan_files(chunks):
    """The input files of a chunk plan, in reading order."""
    return list(dict.fromkeys(path for chunk in chunks for path, _, _ in chunk))


def init_pool_worker(vocab_dir, config_dict, counters, chunks=None):
    """Initializer of a freshly started (spawned) pool process."""
    join_pool(counters)
    init_worker(vocab_dir, config_dict, counters, chunks=chunks)


def join_pool(counters):
    """Initializer of a pool process that inherited its state (fork): report to `counters`, and keep the
    tokenizer to one thread, since the pool already runs a process per core."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    attach_counters(counters)


def attach_counters(counters):
    """Progress goes to `counters`: a shared array (bytes done, documents, instances) that this
    process adds to, a callable taking the same three increments, or None."""
    _STATE["counters"] = counters


def _report(done_bytes, documents, instances):
    counters = _STATE.get("counters")
    if counters is None:
        return
    if callable(counters):
        counters(done_bytes, documents, instances)
        return
    with counters.get_lock():
        counters[0] += done_bytes
        counters[1] += documents
        counters[2] += instances


def chunk_random(seed, chunk_index):
    """(NumPy Generator, random.Random) of one chunk: independent streams, fixed by (seed, chunk index)."""
    numpy_seed, python_seed = np.random.SeedSequence([int(seed), int(chunk_index)]).spawn(2)
    return np.random.Generator(np.random.PCG64(numpy_seed)), python_random(python_seed)


def build_instances(documents, config, rng, rand, sources=None):
    """dupe_factor passes over the documents, shuffled together. sources: a negatives.PairSources for
    nsp/sop (donor documents, the label stream shared by the passes); default: every document walked."""
    sources = sources or PairSources()
    passes = []
    for k in range(config.dupe_factor):
        sources.last_pass = k == config.dupe_factor - 1
        if config.sentence_objective == "none":
            if config.packing:
                passes.append(packed_instances(documents, config.max_seq_length, rng))
            else:
                passes.append(single_instances(documents, config.max_seq_length, config.short_seq_prob, rand))
        else:
            make = packed_pair_instances if config.packing else pair_instances
            passes.append(make(documents, config.max_seq_length, config.short_seq_prob, config.sentence_objective,
                               rand, rng, sources))
    return InstanceTable.concatenate(passes).shuffled(rng)


def encode_batch(table, documents, config, tokenizer, rule, rng, mask_stats, encoder):
    """TFRecord bytes of a batch of instances (masked now, or stored unmasked for dynamic masking)."""
    seq = assemble(table, documents, config.max_seq_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    if config.masking == "dynamic":
        # 0: never masked ([CLS], [SEP], padding), 1: starts a word, 2: continues a word
        word_starts = np.where(seq.candidates, np.where(seq.word_starts, 1, 2), 0)
        return encoder.encode({"input_ids": seq.input_ids, "input_mask": seq.input_mask,
                               "segment_ids": seq.segment_ids, "word_starts": word_starts,
                               "next_sentence_labels": seq.labels})
    rows = len(table)
    if not rule.whole_word and rule.ngram_max == 1:
        masked, positions, lm_ids, weights = mask_batch_tokens(seq.input_ids, seq.candidates, seq.num_tokens, rng,
                                                               rule, mask_stats)
    else:
        pred = config.max_predictions_per_seq
        masked = np.empty_like(seq.input_ids)
        positions = np.zeros((rows, pred), dtype=np.int32)
        lm_ids = np.zeros((rows, pred), dtype=np.int32)
        weights = np.zeros((rows, pred), dtype=np.float32)
        for row in range(rows):
            masked[row], chosen, original = mask_sequence(seq.input_ids[row], seq.candidates[row],
                                                          seq.word_starts[row], int(seq.num_tokens[row]), rng, rule,
                                                          mask_stats)
            positions[row, :chosen.size] = chosen
            lm_ids[row, :chosen.size] = original
            weights[row, :chosen.size] = 1.0
    return encoder.encode(
        {"input_ids": masked, "input_mask": seq.input_mask, "segment_ids": seq.segment_ids,
         "masked_lm_positions": positions, "masked_lm_ids": lm_ids, "next_sentence_labels": seq.labels},
        {"masked_lm_weights": weights})


def process_chunk(task):
    """task: dict(index, segments=[(path, start, end)], path). Writes the shard; returns its statistics."""
    config, tokenizer, segmenter, rule, encoder = (_STATE[k] for k in ("config", "tokenizer", "segmenter", "rule",
                                                                       "encoder"))
    read_stats = ReadStats()
    raw = []
    read = segmenter.read_documents if getattr(segmenter, "by_line", False) else iter_documents
    for path, start, end in task["segments"]:
        raw.extend(read(path, start, end, read_stats, config.max_line_bytes))
    chunk_bytes = sum(end - start for _, start, end in task["segments"])
    raw, held_out, eval_ids = eval_split.hold_out(raw, config.seed, task.get("eval_cutoff"))
    if held_out:
        eval_split.write_documents(task["eval_path"], held_out)
    documents = tokenize_documents(raw, tokenizer, segmenter)
    _report(0, documents.num_documents, 0)
    rng, rand = chunk_random(config.seed, task["index"])
    walked, sources = documents, PairSources()
    if config.sentence_objective == "nsp" and documents.num_documents:
        walked, sources = nsp_sources(documents, task, config, tokenizer, segmenter)
    table = build_instances(walked, config, rng, rand, sources)
    mask_stats = MaskStats()
    reported = 0
    if len(table):
        with TFRecordWriter(task["path"]) as writer:
            for batch in table.batches(BATCH):
                writer.write_framed(encode_batch(batch, walked, config, tokenizer, rule, rng, mask_stats, encoder),
                                    len(batch))
                done = chunk_bytes * writer.count // len(table)
                _report(done - reported, 0, len(batch))
                reported = done
    _report(chunk_bytes - reported, 0, 0)
    label_ones = int(table.label.sum())
    return {
        "index": task["index"], "file": os.path.basename(task["path"]), "instances": len(table),
        "bytes": os.path.getsize(task["path"]) if len(table) else 0, "documents": documents.num_documents,
        "read_stats": read_stats.as_dict(), "masking": mask_stats.as_dict(),
        "sentence_labels": {"0": len(table) - label_ones, "1": label_ones},
        "sequences": {"real_tokens": int(table.num_tokens.sum()), "pairs": table.num_pairs},
        "eval_ids": eval_ids,
    }


def nsp_sources(documents, task, config, tokenizer, segmenter):
    """The chunk's documents joined with donor documents from other chunks, and the PairSources that
    walks only the chunk's own. Raises DataError when the whole input holds a single document."""
    chunks = _STATE.get("chunks") or []
    ranges = donor_ranges(chunks, task["index"], config.seed) if chunks else []
    raw = read_donors(ranges, config.max_line_bytes,
                      segmenter.read_documents if getattr(segmenter, "by_line", False) else iter_documents)
    raw = eval_split.hold_out(raw, config.seed, task.get("eval_cutoff"))[0]
    donors = tokenize_documents(raw, tokenizer, segmenter)
    if documents.num_documents < 2 and donors.num_documents == 0:
        raise one_document_error(sorted({path for chunk in chunks or [task["segments"]] for path, _, _ in chunk}))
    total = sum(segments_bytes(chunk) for chunk in chunks)
    share = segments_bytes(task["segments"]) / total if total else 1.0
    return join_documents(documents, donors), PairSources(num_own=documents.num_documents, local_share=share)
