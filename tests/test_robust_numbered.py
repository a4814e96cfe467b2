"""Names that hold numbers are ordered by the numbers' values: shards, rotated logs, runs, jobs."""

import json
import os

from hvd_pretrain.data import list_shards, shards_for_rank
from hvd_pretrain.numbered import numbered_key, numbered_sorted
from hvd_pretrain.supervisor import jobfile, logfiles
from hvd_pretrain.telemetry import synthetic
from hvd_pretrain.telemetry.store import RunStore


def test_numbered_key_compares_digit_runs_as_numbers():
    names = ["log.10", "log", "log.9", "log.1", "ckpt-100", "ckpt-99", "ckpt-1000", "part-00010", "part-00002"]
    assert numbered_sorted(names) == ["ckpt-99", "ckpt-100", "ckpt-1000", "log", "log.1", "log.9", "log.10",
                                      "part-00002", "part-00010"]
    assert numbered_key("a01") != numbered_key("a1") and numbered_sorted(["a1", "a01"]) == ["a01", "a1"]
    assert max(["shard-2", "shard-10"], key=numbered_key) == "shard-10"


def _google_shards(folder, count):
    os.makedirs(folder, exist_ok=True)
    for k in range(count):
        (folder / ("tf_examples.tfrecord-%d" % k)).write_bytes(b"")
    return ["tf_examples.tfrecord-%d" % k for k in range(count)]


def test_shards_without_padding_are_listed_and_dealt_in_numeric_order(tmp_path):
    names = _google_shards(tmp_path / "data", 12)
    for spec in (str(tmp_path / "data"), str(tmp_path / "data" / "tf_examples.tfrecord-*"),
                 [str(tmp_path / "data" / n) for n in reversed(names)]):
        assert [os.path.basename(f) for f in list_shards(spec)] == names
    files = list_shards(str(tmp_path / "data"))
    assert [os.path.basename(f) for f in shards_for_rank(files[::-1], 1, 4)] == [names[1], names[5], names[9]]


def test_manifest_shards_are_listed_in_numeric_order(tmp_path):
    names = _google_shards(tmp_path / "data", 11)
    manifest = {"shards": [{"file": n, "instances": 1, "bytes": 0} for n in sorted(names)]}
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(manifest))
    assert [os.path.basename(f) for f in list_shards(str(tmp_path / "data"))] == names


def test_rotated_log_backups_are_read_newest_first_by_number(tmp_path):
    path = str(tmp_path / "logs" / logfiles.TRAIN_LOG)
    logger = logfiles.rotating_logger(path, "numbered-test", max_bytes=200, backups=14)
    written = ["line %04d %s" % (k, "x" * 30) for k in range(300)]
    for line in written:
        logger.info(line)
    for handler in logger.handlers:
        handler.close()
    files = logfiles.rotated_files(path)
    assert files[0] == path and [f.rsplit(".", 1)[1] for f in files[1:]] == [str(k) for k in range(1, 15)]
    assert logfiles.tail_lines(path, 40) == written[-40:]  # through train.log.1 .. .10 and beyond
    everything = logfiles.tail_lines(path, 0)
    assert everything == written[-len(everything):] and len(everything) > 40


def test_runs_and_jobs_are_listed_in_numeric_order(tmp_path):
    root = str(tmp_path / "runs")
    for name in ("run-10", "run-2", "run-1"):
        synthetic.write_run(root, name, steps=3, job_state="running")
    store = RunStore(root, min_interval=0.0)
    store.refresh(force=True)
    assert [run.name for run in store.runs()] == ["run-1", "run-2", "run-10"]
    assert [name for name, _ in jobfile.list_jobs(root)] == ["run-1", "run-2", "run-10"]
