"""create_pretraining_data: text files -> TFRecord shards + manifest.json, in a pool of worker processes.

The input is cut into chunks at document boundaries (`plan_chunks`); each
chunk becomes one shard, made by whichever worker takes it. Since chunks and
their random seeds do not depend on the worker count, the output is the same
for 1 or N workers. With NSP, each worker also reads a bounded sample of other
chunks' documents for its random-next segments (negatives.py), chosen from the
whole plan by (seed, chunk index).

Restartable: a finished shard is renamed into place and then recorded in
`.progress/<shard>.json`. A rerun with the same inputs, vocab and config skips
recorded shards whose file is intact; the manifest is written last. An output
dir holding data of another config or vocab is refused, never overwritten.
"""

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from hvd_pretrain.data import eval_split
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.data.distributed import World, clear_failures, mark_failed, wait_for
from hvd_pretrain.data.documents import ReadStats, expand_input_files, plan_chunks
from hvd_pretrain.errors import DataError
from hvd_pretrain.data.features import feature_lengths
from hvd_pretrain.data.masking import MaskStats
from hvd_pretrain.data.shards import MANIFEST, read_manifest
from hvd_pretrain.data.staging import remove_staging, stage_inputs
from hvd_pretrain.inputs import InputConfig, inspect_inputs, needs_conversion
from hvd_pretrain.rundir import read_json, write_json_atomic

FORMAT = "hvd-pretrain-data"
FORMAT_VERSION = 1
# The instance generator's version: bumped whenever the same seed, config and input give other bytes,
# so that a rerun never mixes shards of two generators in one output directory.
GENERATOR_VERSION = 5
PROGRESS_DIR = ".progress"
AUTO_SHARD_BYTES = 32 << 20
AUTO_MIN_SHARDS = 8
PROGRESS_SECONDS = 0.25


def shard_name(index, total):
    return "part-%05d-of-%05d.tfrecord" % (index, total)


def auto_num_shards(total_bytes):
    return max(AUTO_MIN_SHARDS, -(-total_bytes // AUTO_SHARD_BYTES))


def _identity(files, tokenizer, config, reading):
    return {"config_hash": config.fingerprint(), "tokenizer_fingerprint": tokenizer.fingerprint,
            "generator_version": GENERATOR_VERSION, "inputs": [{"path": os.path.abspath(p), "bytes": os.path.getsize(p)} for p in files],
            "reading": reading.to_dict()}


def _check_out_dir(out_dir, identity):
    manifest = read_manifest(out_dir, missing_ok=True)
    if manifest is not None:
        for key in ("config_hash", "tokenizer_fingerprint", "inputs", "reading"):
            saved = manifest.get(key, InputConfig().to_dict() if key == "reading" else None)
            if saved != identity[key]:
                raise DataError("%s already holds data made with another %s; choose a new --out (nothing was changed)"
                                % (out_dir, {"inputs": "input files", "reading": "input format (--input_format,"
                                             " --text_field, ...)"}.get(key, key.split("_")[0])))
        return
    progress_dir = os.path.join(out_dir, PROGRESS_DIR)
    if os.path.isdir(progress_dir):
        for name in sorted(os.listdir(progress_dir)):
            if not name.endswith(".tfrecord.json"):
                continue  # the marks of a multi-rank run (distributed.py)
            record = read_json(os.path.join(progress_dir, name))
            if record and record.get("identity") != identity:
                raise DataError("%s holds an unfinished run with another config, vocab or input; choose a new --out"
                                % out_dir)
    if os.path.isdir(out_dir):
        foreign = [n for n in os.listdir(out_dir) if n.endswith(".tfrecord")
                   and not os.path.exists(os.path.join(out_dir, PROGRESS_DIR, n + ".json"))]
        if foreign:
            raise DataError("%s already holds TFRecords (%s) not made by this run; choose a new --out"
                            % (out_dir, foreign[0]))


def _finished(out_dir, name, identity):
    """The recorded result of a shard if it was completed by a run with the same identity."""
    record = read_json(os.path.join(out_dir, PROGRESS_DIR, name + ".json"))
    if not record or record.get("identity") != identity:
        return None
    result = record["result"]
    path = os.path.join(out_dir, name)
    if result["instances"] and (not os.path.isfile(path) or os.path.getsize(path) != result["bytes"]):
        return None
    if result.get("eval_ids") and not os.path.isfile(eval_split.eval_text_path(out_dir, result["index"])):
        return None
    return result


@dataclass
class Progress:
    """Where a run stands: input bytes turned into instances, documents read, instances written."""

    bytes_done: int
    bytes_total: int
    documents: int
    instances: int
    shards_done: int
    shards_total: int


def create_pretraining_data(input_files, vocab_dir, out_dir, config=None, num_workers=1, progress=None,
                            reading=None, world=None):
    """Write shards and manifest.json into out_dir; return the manifest.

    progress(Progress) is called a few times a second while shards are made, and when each finishes.
    reading: the InputConfig (format, text field or column, document format, sentence splitting);
    inputs that are not plain text in google-research/bert's format are converted first (staging.py).
    world: a distributed.World when several processes (MPI or Horovod ranks) share the work: this
    one makes the chunks i % world.size == world.rank; rank 0 waits for the others and writes and
    returns the manifest, the other ranks return {"rank", "shards_made", "shards_reused"}.
    """
    world = world or World()
    if world.size == 1:
        return _create(input_files, vocab_dir, out_dir, config, num_workers, progress, reading, world)
    progress_dir = os.path.join(out_dir, PROGRESS_DIR)
    os.makedirs(progress_dir, exist_ok=True)
    clear_failures(progress_dir, world)
    try:
        return _create(input_files, vocab_dir, out_dir, config, num_workers, progress, reading, world)
    except BaseException as e:
        mark_failed(progress_dir, world, e if str(e) else type(e).__name__)
        raise


def _create(input_files, vocab_dir, out_dir, config, num_workers, progress, reading, world):
    from hvd_pretrain.vocab.tokenizer import load_tokenizer

    config = (config or DataConfig()).validate()
    reading = (reading or InputConfig()).validate()
    files = expand_input_files(input_files)
    infos = inspect_inputs(files, reading)
    tokenizer = load_tokenizer(vocab_dir)
    from hvd_pretrain.data.segmenter import load_segmenter

    converted = [info.path for info in infos if needs_conversion(info, reading)]
    if config.ref_file and converted:
        raise DataError("--ref_file=%s aligns with the lines of plain-text inputs, but %s is read through a"
                        " conversion (compressed, JSON Lines, Parquet or raw documents); pass the corpus as"
                        " one-sentence-per-line text with its reference file" % (config.ref_file, converted[0]))
    load_segmenter(config, files)  # fail fast (a bad dictionary, module or reference file) before any worker starts
    identity = _identity(files, tokenizer, config, reading)
    if world.rank == 0:
        _check_out_dir(out_dir, identity)
    if world.size > 1:
        _checked_barrier(out_dir, identity, world)
    sources, staging_stats = stage_inputs(infos, reading, out_dir, num_workers, pool_context(), world)
    total_bytes = sum(os.path.getsize(p) for p in sources)
    chunks = plan_chunks(sources, config.num_shards or auto_num_shards(total_bytes))
    os.makedirs(os.path.join(out_dir, PROGRESS_DIR), exist_ok=True)
    cutoff = eval_split.threshold(config, sources)
    tasks, results = [], {}
    for index, segments in enumerate(chunks):
        name = shard_name(index, len(chunks))
        done = _finished(out_dir, name, identity)
        if done is not None:
            results[index] = done
        elif world.owns(index):
            tasks.append({"index": index, "segments": segments, "path": os.path.join(out_dir, name),
                          "eval_cutoff": cutoff, "eval_path": eval_split.eval_text_path(out_dir, index)})
    skipped = len(results)
    started = time.time()
    reused = Progress(total_bytes - sum(_chunk_bytes(t["segments"]) for t in tasks), total_bytes,
                      sum(r["documents"] for r in results.values()), sum(r["instances"] for r in results.values()),
                      len(results), len(chunks))
    tracker = _Tracker(reused, progress)
    tracker.show()
    for result in _run(tasks, vocab_dir, config, num_workers, tracker, tokenizer, chunks):
        write_json_atomic(os.path.join(out_dir, PROGRESS_DIR, shard_name(result["index"], len(chunks)) + ".json"),
                          {"identity": identity, "result": result})
        results[result["index"]] = result
        tracker.shards_done += 1
        tracker.show()
    if world.rank != 0:
        return {"rank": world.rank, "shards_made": len(tasks),
                "shards_reused": sum(1 for i in results if world.owns(i)) - len(tasks)}
    if len(results) < len(chunks):
        _wait_for_ranks(out_dir, identity, chunks, results, world, tracker)
    manifest = _manifest(out_dir, files, tokenizer, config, identity, [results[i] for i in range(len(chunks))])
    if cutoff is not None:
        manifest["eval"] = eval_split.make_eval_shards(out_dir, vocab_dir, config,
                                                       [results[i] for i in range(len(chunks))], num_workers)
    manifest["input_stats"] = ReadStats.from_dict(manifest["input_stats"]).add(staging_stats).as_dict()
    manifest["input_formats"] = [info.as_dict() for info in infos]
    manifest["run"] = {"num_workers": int(num_workers), "shards_made": len(tasks), "shards_reused": skipped,
                       "seconds": round(time.time() - started, 3), "world_size": world.size}
    if manifest["num_instances"] == 0:
        raise DataError("no training instance could be made from %s (too little text?); pass more text"
                        % ",".join(files))
    write_json_atomic(os.path.join(out_dir, MANIFEST), manifest)
    remove_staging(out_dir)
    return manifest


def _checked_barrier(out_dir, identity, world):
    """Rank 0 checks --out before anyone writes to it; the other ranks wait for its mark."""
    mark = os.path.join(out_dir, PROGRESS_DIR, "checked.json")
    if world.rank == 0:
        write_json_atomic(mark, {"identity": identity, "world_size": world.size, "launch": world.launch})
        return
    expected = {"identity": identity, "world_size": world.size, "launch": world.launch}
    wait_for(lambda: read_json(mark) == expected, os.path.join(out_dir, PROGRESS_DIR), world,
             "rank 0 to check %s" % out_dir)


def _wait_for_ranks(out_dir, identity, chunks, results, world, tracker):
    """Rank 0: wait until every chunk's progress record is there, and add those results."""
    pending = [i for i in range(len(chunks)) if i not in results]

    def ready():
        for index in list(pending):
            done = _finished(out_dir, shard_name(index, len(chunks)), identity)
            if done is not None:
                results[index] = done
                pending.remove(index)
                tracker.shards_done += 1
        return not pending

    wait_for(ready, os.path.join(out_dir, PROGRESS_DIR), world, "the shards of the other ranks", tracker.show)


def _chunk_bytes(segments):
    return sum(end - start for _, start, end in segments)


class _Tracker:
    """Adds the workers' running counts (bytes, documents, instances) to what reused shards hold."""

    def __init__(self, reused, callback):
        self.reused, self.callback = reused, callback
        self.counts = [0, 0, 0]
        self.shards_done = reused.shards_done

    def add(self, done_bytes, documents, instances):  # called in this process when there is no pool
        self.counts = [self.counts[0] + done_bytes, self.counts[1] + documents, self.counts[2] + instances]
        self.show()

    def show(self):
        if self.callback:
            r, (done_bytes, documents, instances) = self.reused, self.counts
            self.callback(Progress(r.bytes_done + int(done_bytes), r.bytes_total, r.documents + int(documents),
                                   r.instances + int(instances), self.shards_done, r.shards_total))


def pool_context():
    """fork when it is safe (no TensorFlow, no threads in this process): workers start at once, with the
    modules and tokenizer already loaded. Otherwise spawn."""
    if ("fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
            and threading.active_count() == 1):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _run(tasks, vocab_dir, config, num_workers, tracker, tokenizer, chunks):
    from hvd_pretrain.data import shard_writer

    if not tasks:
        return
    workers = max(1, min(int(num_workers), len(tasks)))
    if workers == 1:
        shard_writer.init_worker(vocab_dir, config.to_dict(), counters=tracker.add, tokenizer=tokenizer, chunks=chunks)
        try:
            for task in tasks:
                yield shard_writer.process_chunk(task)
        finally:
            shard_writer.attach_counters(None)
        return
    context = pool_context()
    counters = context.Array("d", 3)
    if context.get_start_method() == "fork":
        shard_writer.init_worker(vocab_dir, config.to_dict(), tokenizer=tokenizer, chunks=chunks)  # inherited
        initializer, initargs = shard_writer.join_pool, (counters,)
    else:
        initializer, initargs = shard_writer.init_pool_worker, (vocab_dir, config.to_dict(), counters, chunks)
    # A worker that dies (killed by the kernel when memory runs out) breaks the pool: every waiting
    # future then fails with BrokenProcessPool, where multiprocessing.Pool would wait for ever.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        pending = {pool.submit(shard_writer.process_chunk, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
                tracker.counts = counters[:]
                tracker.show()
                for future in done:
                    yield future.result()
        except BrokenProcessPool:
            for future in pending:
                future.cancel()
            raise DataError("a data-creation worker died before finishing its chunk (killed, most likely out of"
                            " memory); rerun with fewer --num_workers: finished shards are kept") from None


def _manifest(out_dir, files, tokenizer, config, identity, results):
    read_stats, mask_stats, labels = ReadStats(), MaskStats(), {"0": 0, "1": 0}
    for result in results:
        read_stats.add(ReadStats.from_dict(result["read_stats"]))
        mask_stats.add(MaskStats.from_dict(result["masking"]))
        for key in labels:
            labels[key] += result["sentence_labels"][key]
    shards = [{"file": r["file"], "instances": r["instances"], "bytes": r["bytes"]} for r in results if r["instances"]]
    total = sum(s["instances"] for s in shards)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(), **identity,
        "tokenizer": tokenizer.describe(),
        "features": {k: list(v) for k, v in feature_lengths(config.max_seq_length, config.max_predictions_per_seq,
                                                            config.masking).items()},
        "next_sentence_labels_shape": "[batch, 1]",
        "shards": shards, "empty_chunks": [r["file"] for r in results if not r["instances"]],
        "num_shards": len(shards), "num_instances": total,
        "documents": sum(r["documents"] for r in results),
        "input_stats": read_stats.as_dict(),
        "masking_stats": mask_stats.as_dict() if config.masking == "static" else None,
        "sentence_labels": labels,
        "sentence_label_1_rate": labels["1"] / total if total else 0.0,
        "sequence_stats": _sequence_stats(results, total, config.max_seq_length),
    }


def _sequence_stats(results, total, max_seq_length):
    """Real tokens ([CLS] and [SEP]s included) and sentence pairs per sequence; None when a reused shard
    was recorded without them."""
    if not total or any("sequences" not in r for r in results):
        return None
    tokens = sum(r["sequences"]["real_tokens"] for r in results)
    pairs = sum(r["sequences"]["pairs"] for r in results)
    return {"real_tokens": tokens, "tokens_per_sequence": round(tokens / total, 3),
            "fill": round(tokens / (total * max_seq_length), 4), "pairs": pairs,
            "pairs_per_sequence": round(pairs / total, 3)}
