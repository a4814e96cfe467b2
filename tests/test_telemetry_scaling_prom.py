"""Scaling-efficiency arithmetic and the Prometheus exposition."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import prom, scaling, synthetic
from hvd_pretrain.telemetry.store import RunStore


def test_efficiency_table_arithmetic():
    entries = [
        ("a1", "bert", 1, 100.0),
        ("a2", "bert", 2, 190.0),
        ("a4", "bert", 4, 360.0),
        ("a8", "bert", 8, 640.0),
        ("b2", "albert", 2, 50.0),
        ("b2x", "albert", 2, 70.0),  # two runs at N0: baseline is their mean, 60
        ("b8", "albert", 8, 180.0),
        ("none", "bert", None, 10.0),
    ]
    rows = {r["run"]: r for r in scaling.efficiency_table(entries)}
    assert "none" not in rows
    assert rows["a1"]["efficiency"] == pytest.approx(1.0)
    assert rows["a2"]["efficiency"] == pytest.approx(190.0 / (2 * 100.0))
    assert rows["a4"]["efficiency"] == pytest.approx(0.9)
    assert rows["a8"]["efficiency"] == pytest.approx(0.8)
    assert rows["a8"]["ideal_examples_per_sec"] == pytest.approx(800.0)
    assert rows["b2"]["baseline_world_size"] == 2
    assert rows["b2"]["efficiency"] == pytest.approx(50.0 / 60.0)
    assert rows["b8"]["efficiency"] == pytest.approx(180.0 / (4 * 60.0))


def test_scaling_rows_on_constructed_runs(tmp_path):
    root = str(tmp_path)
    for world in (1, 2, 4):
        synthetic.write_run(root, "tiny-np%d" % world, steps=50, world=world)
    synthetic.write_run(root, "other-model", steps=50, world=2, model="albert-base")
    synthetic.write_run(root, "other-batch", steps=50, world=2, per_rank_batch=16)
    store = RunStore(root, min_interval=0)
    store.refresh(force=True)
    rows = {r["run"]: r for r in scaling.scaling_rows(store.runs())}
    # synthetic examples/sec at N: N*8/(1+0.05(N-1)); efficiency = 1/(1+0.05(N-1))
    for world in (1, 2, 4):
        row = rows["tiny-np%d" % world]
        assert row["baseline_world_size"] == 1
        assert row["efficiency"] == pytest.approx(1.0 / (1 + 0.05 * (world - 1)))
    assert rows["other-model"]["efficiency"] == pytest.approx(1.0)  # alone in its group
    assert rows["other-batch"]["efficiency"] == pytest.approx(1.0)
    assert rows["other-model"]["group"] != rows["tiny-np2"]["group"]


def test_steady_throughput_skips_warmup(tmp_path):
    run = synthetic.write_run(str(tmp_path), "r", steps=40)
    lines = open(run.metrics).read().splitlines()
    first = json.loads(lines[0])
    first["examples_per_sec"] = 1.0  # compilation window
    lines[0] = json.dumps(first)
    open(run.metrics, "w").write("\n".join(lines) + "\n")
    store = RunStore(str(tmp_path), min_interval=0)
    store.refresh(force=True)
    assert scaling.steady_examples_per_sec(store.get("r")) == pytest.approx(16 / 1.05)


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_match_metrics_jsonl(tmp_path):
    root = str(tmp_path)
    synthetic.write_run(root, "np2", steps=30, slow_rank=1, rank_stats_every=3, job_state="running")
    synthetic.write_run(root, "failed", steps=12, total=50, job_state="failed", restarts=3)
    rundir.RunDir(str(tmp_path / "empty")).ensure()
    store = RunStore(root, min_interval=0)
    store.refresh(force=True)
    body, ctype = prom.exposition(store)
    assert ctype.startswith("text/plain")
    fams = _families(body.decode())

    def value(metric, **labels):
        fam = fams[metric[: -len("_total")] if metric.endswith("_total") else metric]
        hits = [s.value for s in fam.samples if s.name == metric and s.labels == labels]
        assert len(hits) == 1, (metric, labels, fam.samples)
        return hits[0]

    for name in ("np2", "failed"):
        records = rundir.read_jsonl(str(tmp_path / name / "metrics.jsonl"))[0]
        last = records[-1]
        assert value("hvd_pretrain_step", run=name) == last["step"]
        assert value("hvd_pretrain_examples_per_sec", run=name) == pytest.approx(last["examples_per_sec"])
        assert value("hvd_pretrain_global_step_per_sec", run=name) == pytest.approx(last["global_step_per_sec"])
        assert value("hvd_pretrain_tokens_per_sec", run=name) == pytest.approx(last["tokens_per_sec"])
        assert value("hvd_pretrain_loss", run=name) == pytest.approx(last["loss"])
        assert value("hvd_pretrain_learning_rate", run=name) == pytest.approx(last["lr"])
        assert value("hvd_pretrain_mfu", run=name) == pytest.approx(last["mfu"])
        assert value("hvd_pretrain_world_size", run=name) == last["world_size"]
        assert value("hvd_pretrain_last_heartbeat_timestamp_seconds", run=name) == pytest.approx(last["time"])
        for objective, loss in last["losses"].items():
            assert value("hvd_pretrain_objective_loss", run=name, objective=objective) == pytest.approx(loss)
        assert value("hvd_pretrain_progress_ratio", run=name) == pytest.approx(last["step"] / last["num_train_steps"])
        assert value("hvd_pretrain_metrics_rows", run=name) == len(records)
    assert value("hvd_pretrain_run_state", run="failed", state="failed") == 1.0
    assert value("hvd_pretrain_run_state", run="failed", state="running") == 0.0
    assert value("hvd_pretrain_run_alert", run="failed") == 1.0
    assert value("hvd_pretrain_restarts_total", run="failed") == 3
    assert value("hvd_pretrain_run_state", run="empty", state="no metrics") == 1.0
    # straggler figures: the trainer's last min/median/max and each rank's last record
    records = rundir.read_jsonl(str(tmp_path / "np2" / "metrics.jsonl"))[0]
    last_stats = [r for r in records if "ranks" in r][-1]["ranks"]
    assert value("hvd_pretrain_step_time_seconds", run="np2", stat="max") == last_stats["step_time"]["max"]
    assert value("hvd_pretrain_slowest_rank", run="np2") == last_stats["slowest_rank"]
    rank1 = rundir.read_jsonl(str(tmp_path / "np2" / "ranks" / "1.jsonl"))[0][-1]
    assert value("hvd_pretrain_rank_step_time_seconds", run="np2", rank="1") == pytest.approx(rank1["step_time"])
    assert value("hvd_pretrain_rank_data_wait_seconds", run="np2", rank="1") == pytest.approx(rank1["data_wait"])


def test_precision_and_xla_are_read_from_the_plan(tmp_path):
    from hvd_pretrain.telemetry.status import plan_setting
    assert plan_setting({"train": {"precision": "mixed_float16", "use_xla": True}}, "precision") == "mixed_float16"
    assert plan_setting({"train": {"use_xla": True}}, "xla") is True
    assert plan_setting({"xla": False}, "xla") is False
    assert plan_setting({}, "precision") is None
    run = synthetic.write_run(str(tmp_path), "r", steps=20)
    plan = rundir.read_json(run.plan)
    plan["train"] = {"precision": "mixed_float16", "xla": True}
    rundir.write_json_atomic(run.plan, plan)
    store = RunStore(str(tmp_path), min_interval=0)
    store.refresh(force=True)
    row = scaling.scaling_rows(store.runs())[0]
    assert (row["precision"], row["xla"]) == ("mixed_float16", True)
