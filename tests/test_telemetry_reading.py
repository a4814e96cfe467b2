"""The monitor's readers: incremental JSONL, column storage, downsampling, run state, bad input."""

import json
import os
import time

import numpy as np
import pytest

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import api, jsonl, series, status, synthetic
from hvd_pretrain.telemetry.run import RunMonitor
from hvd_pretrain.telemetry.store import RunStore


def _append(path, *records, raw=None):
    with open(path, "a") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
        if raw is not None:
            f.write(raw)


def test_tail_reads_only_appended_bytes_and_waits_for_partial_line(tmp_path):
    path = str(tmp_path / "m.jsonl")
    tail = jsonl.JsonlTail(path)
    assert tail.poll() == ([], False, False)  # missing file
    _append(path, {"step": 1}, {"step": 2}, raw='{"step": 3')
    records, reset, more = tail.poll()
    assert [r["step"] for r in records] == [1, 2] and not reset and not more
    offset = tail.offset
    assert offset == len(b'{"step": 1}\n{"step": 2}\n')
    assert tail.poll()[0] == []  # partial line stays pending
    _append(path, raw="}\n")
    records, _, _ = tail.poll()
    assert [r["step"] for r in records] == [3]
    assert tail.offset == os.path.getsize(path)


def test_tail_counts_a_truncated_line_and_goes_on(tmp_path):
    path = str(tmp_path / "m.jsonl")
    _append(path, {"step": 1}, raw='{"step": 2, "lo\n')
    _append(path, {"step": 3}, raw="[1, 2]\n")
    tail = jsonl.JsonlTail(path)
    records, _, _ = tail.poll()
    assert [r["step"] for r in records] == [1, 3]
    assert tail.bad_lines == 2


def test_tail_reads_a_backlog_in_bounded_chunks(tmp_path):
    path = str(tmp_path / "m.jsonl")
    _append(path, *({"step": i, "pad": "x" * 50} for i in range(1000)))
    tail = jsonl.JsonlTail(path, chunk_bytes=4096)
    steps, polls = [], 0
    while True:
        records, _, more = tail.poll()
        polls += 1
        steps += [r["step"] for r in records]
        assert len(records) <= 4096 // 60 + 1
        if not more:
            break
    assert steps == list(range(1000))
    assert polls > 10


def test_tail_starts_over_when_the_file_is_replaced(tmp_path):
    path = str(tmp_path / "m.jsonl")
    _append(path, {"step": 1}, {"step": 2})
    tail = jsonl.JsonlTail(path)
    assert len(tail.poll()[0]) == 2
    os.unlink(path)
    _append(path, {"step": 9})
    records, reset, _ = tail.poll()
    assert reset and [r["step"] for r in records] == [9]


def test_flatten_and_columns_fill_missing_keys_with_nan():
    rows = [series.flatten({"step": 1, "loss": 2.0, "losses": {"mlm": 1.5}, "event": "x", "ok": True}),
            series.flatten({"step": 2, "ranks": {"step_time": {"max": 0.3}, "slowest_rank": 1}})]
    assert rows[0] == {"step": 1, "loss": 2.0, "losses.mlm": 1.5}
    assert rows[1] == {"step": 2, "ranks.step_time.max": 0.3, "ranks.slowest_rank": 1}
    cols = series.Columns()
    cols.extend(rows[:1])
    cols.extend(rows[1:])
    assert cols.n == 2
    assert np.isnan(cols.column("loss")[1]) and cols.column("loss")[0] == 2.0
    assert np.isnan(cols.column("ranks.step_time.max")[0]) and cols.column("ranks.step_time.max")[1] == 0.3
    assert cols.last("loss") == 2.0 and cols.last("missing") is None


def test_downsample_keeps_extremes_and_bounds_points():
    n = 100_003
    x = np.arange(n, dtype=float)
    y = np.sin(x / 1000.0)
    y[54_321] = 25.0   # one spike
    y[77_777] = -30.0  # one dip
    sparse = np.full(n, np.nan)
    sparse[::1000] = 1.0
    xd, yd = series.downsample(x, {"y": y, "sparse": sparse}, points=1000)
    assert len(xd) <= 1002 and len(yd["y"]) == len(xd)
    assert np.nanmax(yd["y"]) == 25.0 and np.nanmin(yd["y"]) == -30.0
    assert np.all(np.diff(xd) >= 0) and xd[0] == 0 and xd[-1] == n - 1
    assert np.nansum(np.isfinite(yd["sparse"])) > 0
    small_x, small = series.downsample(x[:10], {"y": y[:10]}, points=1000)
    assert len(small_x) == 10 and np.array_equal(small["y"], y[:10])


def test_refresh_is_incremental(tmp_path, monkeypatch):
    run = synthetic.write_run(str(tmp_path), "r", steps=30)
    mon = RunMonitor(run.root)
    calls = []
    real = jsonl.read_jsonl_chunk
    monkeypatch.setattr(jsonl, "read_jsonl_chunk", lambda p, o, m=jsonl.CHUNK_BYTES: calls.append((p, o)) or real(p, o, m))
    mon.refresh()
    assert mon.metrics.n == 30
    first_offset = mon.tail.offset
    calls.clear()
    mon.refresh()  # nothing new: no file is read
    assert calls == []
    _append(run.metrics, synthetic.metrics_record(31, 1.7e9, 30, 2))
    mon.refresh()
    assert mon.metrics.n == 31
    assert (run.metrics, first_offset) in calls  # read from where it stopped, not from 0
    assert all(offset > 0 for path, offset in calls if path == run.metrics)


def test_run_with_no_metrics_truncated_line_and_half_written_job(tmp_path):
    root = str(tmp_path)
    empty = rundir.RunDir(os.path.join(root, "empty")).ensure()
    bad = synthetic.write_run(root, "bad", steps=5, job_state="running")
    _append(bad.metrics, raw='{"time": 1, "step"')        # a write in progress at the end
    with open(bad.job, "w") as f:
        f.write('{"name": "bad", "state": "runn')         # half-written job.json
    halfplan = rundir.RunDir(os.path.join(root, "halfplan")).ensure()
    with open(halfplan.plan, "w") as f:
        f.write("{")
    _append(halfplan.metrics, raw="not json\n")
    store = RunStore(root, min_interval=0)
    store.refresh(force=True)
    rows = {r["name"]: r for r in api.overview(store)["runs"]}
    assert set(rows) == {"empty", "bad", "halfplan"}
    assert rows["empty"]["state"] == "no metrics"
    assert "no metrics.jsonl yet" in rows["empty"]["problems"]
    assert rows["bad"]["rows"] == 5
    assert any("job.json is unreadable" in p for p in rows["bad"]["problems"])
    assert any("incomplete line" in p for p in rows["bad"]["problems"])
    assert rows["halfplan"]["state"] == "no metrics"
    assert any("plan.json is unreadable" in p for p in rows["halfplan"]["problems"])
    assert any("1 unreadable line" in p for p in rows["halfplan"]["problems"])
    for name in rows:  # every view of a broken run still renders
        run = store.get(name)
        json.dumps(api.run_detail(run), allow_nan=False)
        json.dumps(api.run_series(run), allow_nan=False)
        json.dumps(api.ranks_view(run), allow_nan=False)


def test_states_from_supervisor_and_heartbeat(tmp_path):
    root = str(tmp_path)
    now = time.time()
    synthetic.write_run(root, "live", steps=10, total=100, t0=now - 100, interval=10)
    synthetic.write_run(root, "quiet", steps=10, total=100, t0=now - 5000, interval=10)
    synthetic.write_run(root, "done", steps=10, total=10, t0=now - 5000)
    synthetic.write_run(root, "failed", steps=10, total=100, t0=now - 5000, job_state="failed", restarts=2)
    synthetic.write_run(root, "hung", steps=10, total=100, t0=now - 5000, job_state="hung")
    synthetic.write_run(root, "sup-stalled", steps=10, total=100, t0=now - 5000, job_state="running")
    store = RunStore(root, min_interval=0)
    store.refresh(force=True)
    got = {r["name"]: r for r in api.overview(store, now)["runs"]}
    assert got["live"]["state"] == "running" and not got["live"]["alert"]
    assert got["quiet"]["state"] == "stalled" and got["quiet"]["alert"]
    assert got["done"]["state"] == "finished"
    assert got["failed"]["state"] == "failed" and got["failed"]["restarts"] == 2
    assert got["failed"]["last_exit_code"] == 1
    assert got["hung"]["state"] == "hung"
    assert got["sup-stalled"]["state"] == "stalled"
    assert got["live"]["progress"] == pytest.approx(10.0)
    # alerts first on the overview
    names = [r["name"] for r in api.overview(store, now)["runs"]]
    assert set(names[:4]) == {"quiet", "failed", "hung", "sup-stalled"}


def test_events_restarts_and_phase_changes_become_markers(tmp_path):
    run = synthetic.write_run(str(tmp_path), "r", steps=25, job_state="failed", restarts=1)
    _append(run.metrics, dict(synthetic.metrics_record(26, 1.7e9, 25, 4), event="resume"))
    mon = RunMonitor(run.root)
    mon.refresh()
    kinds = [e["kind"] for e in api.run_detail(mon)["events"]]
    assert kinds.count("restart") == 1 and "exit" in kinds
    assert "start" in kinds and "checkpoint" in kinds and "resume" in kinds
    labels = [e["label"] for e in api.run_detail(mon)["events"] if e["kind"] == "phase"]
    assert any("world_size 2" in label and "4" in label for label in labels)


def test_straggler_view_names_the_slow_rank_from_rank_files(tmp_path):
    run = synthetic.write_run(str(tmp_path), "r", steps=40, world=4, slow_rank=2)
    mon = RunMonitor(run.root)
    mon.refresh()
    view = api.ranks_view(mon, points=50)
    assert view["slowest"]["rank"] == 2 and view["slowest"]["source"] == "ranks/*.jsonl"
    assert view["slowest"]["vs_median"] > 2
    assert view["source"] == "ranks/*.jsonl"
    assert max(v for v in view["step_time"]["max"] if v is not None) >= 0.25
    assert max(v for v in view["step_time"]["min"] if v is not None) < 0.2
    assert set(view["per_rank"]) == {"0", "1", "2", "3"}


def test_straggler_view_prefers_trainer_fields(tmp_path):
    run = synthetic.write_run(str(tmp_path), "r", steps=40, world=2, slow_rank=1, rank_stats_every=4)
    mon = RunMonitor(run.root)
    mon.refresh()
    view = api.ranks_view(mon, points=50)
    assert view["slowest"] == dict(view["slowest"], rank=1, source="trainer")
    assert view["source"] == "metrics.jsonl"
    assert [v for v in view["step_time"]["max"] if v is not None][0] == 0.25


def test_odd_values_never_break_the_columns(tmp_path):
    run = rundir.RunDir(str(tmp_path / "odd")).ensure()
    with open(run.metrics, "w") as f:
        f.write('{"time": 1, "step": 1, "loss": 10' + "0" * 400 + '}\n')   # int beyond float range
        f.write('{"time": 2, "step": 1e999, "loss": "nan", "lr": null, "world_size": [2]}\n')
        f.write('{"time": 3, "step": 3, "loss": 2.5, "losses": {"mlm": {"deep": {"deeper": 1}}}}\n')
        f.write('{"time": 4, "step": 4, "world_size": 1e999, "event": 5}\n')
    with open(run.rank_log(0), "w") as f:
        f.write('{"time": "x", "step": 1, "step_time": null, "data_wait": 1' + "0" * 400 + '}\n')
    mon = RunMonitor(run.root)
    mon.refresh()
    assert mon.refresh_error is None
    assert mon.metrics.n == 4 and all(len(c) == 4 for c in mon.metrics.cols.values())
    assert mon.ranks[0].cols.n == 1 and all(len(c) == 1 for c in mon.ranks[0].cols.cols.values())
    assert mon.metrics.column("loss")[2] == 2.5
    json.dumps(api.run_series(mon), allow_nan=False)
    json.dumps(api.ranks_view(mon), allow_nan=False)
    json.dumps(status.summarize(mon), allow_nan=False)


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every microsecond, so that races show within a few hundred appends."""
    import sys
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def while_threads_read(read_once, write, readers=2):
    """Run write() while `readers` threads call read_once() in a loop; the exceptions either raised,
    as repr strings (write() may add its own to the list it is given)."""
    import threading
    stop, errors = threading.Event(), []

    def read():
        while not stop.is_set():
            try:
                read_once()
            except Exception as e:  # pragma: no cover - reported by the caller
                errors.append(repr(e))

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    try:
        write(errors)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return errors


def test_columns_grow_while_other_threads_read_them(frequent_thread_switches):
    # A reader's numpy view of a column forbids the column to grow; an append that
    # met one raised BufferError and its rows were lost.
    cols = series.Columns(max_columns=4)

    def write(errors):
        for i in range(2000):
            try:
                if i % 2:
                    cols.extend_fields([{"time": float(i), "step": i}], ["time", "step"])
                else:
                    cols.extend([{"time": float(i), "step": i}])
            except Exception as e:
                errors.append(repr(e))

    errors = while_threads_read(
        lambda: (cols.last("time"), cols.tail("step", 5), cols.column("time"), cols.changes("step", 0)), write)
    assert errors == []
    assert cols.n == 2000 and all(len(c) == 2000 for c in cols.cols.values())
    assert cols.column("step").tolist() == list(range(2000))


def test_readers_and_refresh_run_concurrently(tmp_path, frequent_thread_switches):
    run = synthetic.write_run(str(tmp_path), "r", steps=50)
    store = RunStore(str(tmp_path), min_interval=0)
    store.refresh(force=True)

    def read_once():
        mon = store.get("r")
        api.run_series(mon, points=50)
        api.ranks_view(mon, points=20)
        status.summarize(mon)

    def write(errors):
        for i in range(200):
            rundir.append_jsonl(run.metrics, synthetic.metrics_record(51 + i, 1.7e9, 300, 2))
            rundir.append_jsonl(run.rank_log(0), {"time": 1.7e9 + i, "step": 51 + i, "step_time": 0.1})
            store.refresh(force=True)
            if store.get("r").refresh_error:
                errors.append(store.get("r").refresh_error)

    assert while_threads_read(read_once, write) == []
    mon = store.get("r")
    assert mon.refresh_error is None
    assert mon.metrics.n == 250 and mon.ranks[0].cols.n == 250


def test_a_run_not_read_yet_is_loading_not_empty(tmp_path):
    run = synthetic.write_run(str(tmp_path), "r", steps=5)
    mon = RunMonitor(run.root)
    assert status.summarize(mon)["state"] == "loading"
    mon.refresh()
    assert status.summarize(mon)["state"] == "finished"
    empty = RunMonitor(rundir.RunDir(str(tmp_path / "e")).ensure().root)
    assert status.summarize(empty)["state"] == "no metrics"


def test_preview_gives_the_latest_values_before_a_large_backlog_is_read(tmp_path):
    from hvd_pretrain.telemetry import run as run_module
    run = synthetic.write_run(str(tmp_path), "big", steps=3000, total=4000, rank_stats_every=7, slow_rank=1)
    records = rundir.read_jsonl(run.metrics)[0]
    mon = RunMonitor(run.root)
    mon.tail.chunk_bytes = 64 << 10          # read the backlog in many small chunks
    assert os.path.getsize(run.metrics) > run_module.PREVIEW_BYTES
    assert mon.preview()
    summary = status.summarize(mon)
    assert summary["step"] == 3000 and summary["rows"] == 0
    assert summary["loss"] == pytest.approx(records[-1]["loss"])
    assert summary["slowest_rank"] == 1 and summary["state"] != "loading"
    steps_seen = []
    while True:  # one chunk at a time, as the refresher would, checking the overview never goes back
        got, reset, more = mon.tail.poll()
        mon._ingest(got, [series.flatten(r) for r in got])
        steps_seen.append(status.summarize(mon)["step"])
        if not more:
            break
    assert len(steps_seen) > 5 and set(steps_seen) == {3000}
    assert mon.metrics.n == 3000 and mon.preview_end == 0
    last_stats = [r for r in records if "ranks" in r][-1]["ranks"]
    assert mon.latest["step"] == 3000 and mon.latest["loss"] == pytest.approx(records[-1]["loss"])
    assert mon.latest["ranks.step_time.max"] == last_stats["step_time"]["max"]
