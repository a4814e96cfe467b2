"""Inputs that are not google-research/bert's plain text are converted to it once, under <out>/.staging/.

Data creation cuts its input into chunks by byte offsets at document boundaries
(`documents.plan_chunks`), which needs seekable text in one format. Compressed files,
JSON Lines, Parquet and raw documents to be split into sentences are therefore read once,
streaming, by `hvd_pretrain.inputs` and written as canonical text (one sentence per line, a
blank line between documents), one file per input. The chunks are then planned on those
files exactly as on plain text, so the same documents give byte-identical shards whatever
format they came in. An uncompressed text file in google-research/bert's format is used
as it is, without a copy.

A converted file is recorded next to it (`<name>.json`: the source's path, size and
modification time, the reading options and what reading skipped); a rerun reuses it
when all of these still match. Several inputs are converted in parallel, one file per
worker (and across ranks, see distributed.py). The directory needs about the decompressed size of the converted inputs, and is
removed once manifest.json is written.
"""

import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor

from hvd_pretrain.inputs import ReadStats, needs_conversion, write_canonical
from hvd_pretrain.rundir import read_json, write_json_atomic

STAGING_DIR = ".staging"
STAGING_VERSION = 1


def _source(info):
    stat = os.stat(info.path)
    return {"path": os.path.abspath(info.path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "format": info.format, "compression": info.compression}


def _target(out_dir, index, info):
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(info.path))[:80]
    return os.path.join(out_dir, STAGING_DIR, "%05d-%s.txt" % (index, name))


def _reusable(target, record):
    saved = read_json(target + ".json")
    return (saved and saved.get("key") == record and os.path.isfile(target)
            and os.path.getsize(target) == saved.get("bytes"))


def convert(task):
    """Convert one input (a task dict from `stage_inputs`); returns its ReadStats as a dict."""
    stats = ReadStats()
    size = write_canonical(task["info"], task["target"], task["reading"], stats)
    write_json_atomic(task["target"] + ".json", {"key": task["key"], "bytes": size, "stats": stats.as_dict()})
    return stats.as_dict()


def stage_inputs(infos, reading, out_dir, num_workers=1, context=None, world=None):
    """The files to plan chunks on (inputs used as they are, or their converted copies), and the
    ReadStats of converting (records read and skipped).

    infos: checked inputs (hvd_pretrain.inputs.InputInfo); reading: the InputConfig.
    context: the multiprocessing context for converting several files in parallel.
    world: a distributed.World; each rank converts the inputs i % world.size == world.rank and
    waits for the others' conversions.
    """
    from hvd_pretrain.data.distributed import World, wait_for

    world = world or World()
    paths, pending, tasks = [], [], []
    for index, info in enumerate(infos):
        if not needs_conversion(info, reading):
            paths.append(info.path)
            continue
        target = _target(out_dir, index, info)
        key = {"version": STAGING_VERSION, "source": _source(info), "reading": reading.to_dict()}
        paths.append(target)
        pending.append((target, key))
        if world.owns(index) and not _reusable(target, key):
            tasks.append({"info": info, "target": target, "reading": reading, "key": key})
    if tasks:
        os.makedirs(os.path.join(out_dir, STAGING_DIR), exist_ok=True)
        workers = max(1, min(int(num_workers), len(tasks)))
        if workers == 1 or context is None:
            for task in tasks:
                convert(task)
        else:
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                list(pool.map(convert, tasks))
    if world.size > 1:
        wait_for(lambda: all(_reusable(target, key) for target, key in pending),
                 os.path.join(out_dir, ".progress"), world, "the other ranks' input conversions")
    stats = ReadStats()
    for target, _ in pending:
        stats.add(ReadStats.from_dict(read_json(target + ".json")["stats"]))
    return paths, stats


def remove_staging(out_dir):
    """Delete the converted copies (after the manifest is written)."""
    shutil.rmtree(os.path.join(out_dir, STAGING_DIR), ignore_errors=True)
