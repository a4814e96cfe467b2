"""Eval records of metrics.jsonl on hvd-monitor's Prometheus /metrics. No TensorFlow here."""

import os

from prometheus_client.parser import text_string_to_metric_families

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import prom, synthetic
from hvd_pretrain.telemetry.store import RunStore


def test_newest_eval_record_is_exposed_per_metric(tmp_path):
    root = str(tmp_path)
    synthetic.write_run(root, "r", steps=20, job_state="running")
    metrics = os.path.join(root, "r", "metrics.jsonl")
    for step, accuracy in ((10, 0.11), (20, 0.17)):
        rundir.append_jsonl(metrics, {"time": 1e9 + step, "step": step, "event": "eval",
                                      "eval": {"loss": 7.0 - step / 10, "mlm_accuracy": accuracy, "examples": 512}})
    store = RunStore(root, min_interval=0)
    store.refresh(force=True)
    body, _ = prom.exposition(store)
    samples = {(s.labels["metric"]): s.value for fam in text_string_to_metric_families(body.decode())
               if fam.name == "hvd_pretrain_eval" for s in fam.samples if s.labels["run"] == "r"}
    assert samples == {"loss": 5.0, "mlm_accuracy": 0.17, "examples": 512}
