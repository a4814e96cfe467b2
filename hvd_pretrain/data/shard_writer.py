"""One chunk of input text -> one TFRecord shard. Runs in a worker process; no TensorFlow.

A worker loads the tokenizer (and the segmenter, for Chinese whole-word
masking) once, in `init_worker`, then handles any number of chunks. All
randomness of a chunk comes from a generator seeded with (seed, chunk index),
so a shard's bytes do not depend on which worker made it or how many there were.
"""

import os

import numpy as np

from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.data.documents import ReadStats, iter_documents
from hvd_pretrain.data.instances import assemble_batch, instances_from_document, packed_instances
from hvd_pretrain.data.masking import MaskingRule, MaskStats, mask_batch_tokens, mask_sequence
from hvd_pretrain.data.tfrecord import TFRecordWriter, encode_examples

_STATE = {}
BATCH = 256  # instances assembled, masked and encoded together


def init_worker(vocab_dir, config_dict):
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    config = DataConfig.from_dict(config_dict)
    tokenizer = load_tokenizer(vocab_dir)
    segmenter = None
    if config.segmenter == "jieba":
        from hvd_pretrain.data.segmenter import JiebaSegmenter

        segmenter = JiebaSegmenter(config.wwm_dict)
    rule = MaskingRule(mask_id=tokenizer.mask_id, random_ids=tokenizer.random_ids,
                       max_predictions=config.max_predictions_per_seq, masked_lm_prob=config.masked_lm_prob,
                       whole_word=config.whole_word_masking, ngram_max=config.ngram_max,
                       mask_prob=config.mask_prob, random_prob=config.random_prob)
    _STATE.update(config=config, tokenizer=tokenizer, segmenter=segmenter, rule=rule)


def tokenize_documents(raw_documents, tokenizer, segmenter=None):
    """Lists of sentence strings -> lists of (ids, word-start flags); empty sentences and documents dropped."""
    sentences = [s for document in raw_documents for s in document]
    table = tokenizer.word_start_table
    if segmenter is None:
        encoded = [(ids, None) for ids in tokenizer.encode_batch(sentences)]
    else:
        encoded = []
        for text in sentences:
            ids, offsets = tokenizer.encode_with_offsets(text)
            boundaries = segmenter.word_start_offsets(text)
            encoded.append((ids, [offset in boundaries for offset in offsets]))
    documents, k = [], 0
    for document in raw_documents:
        out = []
        for _ in document:
            ids, starts = encoded[k]
            k += 1
            if not ids:
                continue
            ids = np.asarray(ids, dtype=np.int32)
            starts = table[ids] if starts is None else np.asarray(starts, dtype=bool)
            out.append((ids, starts))
        if out:
            documents.append(out)
    return documents


def chunk_rng(seed, chunk_index):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(chunk_index)])))


def build_instances(documents, config, rng, separator_id=None):
    instances = []
    for _ in range(config.dupe_factor):
        if config.packing:
            instances.extend(packed_instances(documents, config.max_seq_length, separator_id, rng))
            continue
        for doc_index in range(len(documents)):
            instances.extend(instances_from_document(documents, doc_index, config.max_seq_length,
                                                     config.short_seq_prob, config.sentence_objective, rng))
    order = rng.permutation(len(instances))
    return [instances[i] for i in order]


def encode_batch(instances, config, tokenizer, rule, rng, mask_stats):
    """Serialized tf.train.Examples for instances (masked now, or stored unmasked for dynamic masking)."""
    ids, input_mask, segment_ids, candidates, starts, num_tokens = assemble_batch(
        instances, config.max_seq_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    labels = np.array([[instance.label] for instance in instances], dtype=np.int32)
    if config.masking == "dynamic":
        # 0: never masked ([CLS], [SEP], padding), 1: starts a word, 2: continues a word
        word_starts = np.where(candidates, np.where(starts, 1, 2), 0)
        return encode_examples({"input_ids": ids, "input_mask": input_mask, "segment_ids": segment_ids,
                                "word_starts": word_starts, "next_sentence_labels": labels})
    if not rule.whole_word and rule.ngram_max == 1:
        masked, positions, lm_ids, weights = mask_batch_tokens(ids, candidates, num_tokens, rng, rule, mask_stats)
    else:
        pred = config.max_predictions_per_seq
        masked = np.empty_like(ids)
        positions = np.zeros((len(instances), pred), dtype=np.int32)
        lm_ids = np.zeros((len(instances), pred), dtype=np.int32)
        weights = np.zeros((len(instances), pred), dtype=np.float32)
        for row in range(len(instances)):
            masked[row], chosen, original = mask_sequence(ids[row], candidates[row], starts[row],
                                                          int(num_tokens[row]), rng, rule, mask_stats)
            positions[row, :chosen.size] = chosen
            lm_ids[row, :chosen.size] = original
            weights[row, :chosen.size] = 1.0
    return encode_examples(
        {"input_ids": masked, "input_mask": input_mask, "segment_ids": segment_ids,
         "masked_lm_positions": positions, "masked_lm_ids": lm_ids, "next_sentence_labels": labels},
        {"masked_lm_weights": weights})


def process_chunk(task):
    """task: dict(index, segments=[(path, start, end)], path). Writes the shard; returns its statistics."""
    config, tokenizer, segmenter, rule = (_STATE[k] for k in ("config", "tokenizer", "segmenter", "rule"))
    read_stats = ReadStats()
    raw = []
    for path, start, end in task["segments"]:
        raw.extend(iter_documents(path, start, end, read_stats, config.max_line_bytes))
    documents = tokenize_documents(raw, tokenizer, segmenter)
    rng = chunk_rng(config.seed, task["index"])
    instances = build_instances(documents, config, rng, tokenizer.sep_id)
    mask_stats = MaskStats()
    labels = [0, 0]
    if instances:
        with TFRecordWriter(task["path"]) as writer:
            for first in range(0, len(instances), BATCH):
                batch = instances[first:first + BATCH]
                writer.write_many(encode_batch(batch, config, tokenizer, rule, rng, mask_stats))
                for instance in batch:
                    labels[instance.label] += 1
    return {
        "index": task["index"], "file": os.path.basename(task["path"]), "instances": len(instances),
        "bytes": os.path.getsize(task["path"]) if instances else 0, "documents": len(documents),
        "read_stats": read_stats.as_dict(), "masking": mask_stats.as_dict(),
        "sentence_labels": {"0": labels[0], "1": labels[1]},
    }
