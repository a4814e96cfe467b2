"""monitoring/: the Grafana dashboard, scrape config and alert rules refer to metrics that exist."""

import json
import os
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from hvd_pretrain.telemetry import prom, synthetic
from hvd_pretrain.telemetry.store import RunStore
from tests.proc import REPO

MONITORING = os.path.join(REPO, "monitoring")
METRIC = re.compile(r"\b(hvd_pretrain_[a-z_]+|DCGM_FI_[A-Z_]+)\b")


def exported_names(tmp_path):
    synthetic.write_run(str(tmp_path), "r", steps=20, rank_stats_every=2, slow_rank=1, job_state="running",
                        restarts=1)
    store = RunStore(str(tmp_path), min_interval=0)
    store.refresh(force=True)
    body, _ = prom.exposition(store)
    return {s.name for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def dashboard_exprs(dash):
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_queries_use_exported_metrics(tmp_path):
    with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    names = exported_names(tmp_path)
    exprs = dashboard_exprs(dash)
    used = {m for e in exprs for m in METRIC.findall(e)}
    ours = {m for m in used if m.startswith("hvd_pretrain_")}
    assert ours and ours <= names, sorted(ours - names)
    assert any(m.startswith("DCGM_FI_") for m in used)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dash["templating"]["list"]} >= {"datasource", "run"}
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            if "hvd_pretrain_" in target["expr"]:
                assert 'run=~"$run"' in target["expr"], target["expr"]


def test_scrape_config_and_alerts_are_consistent(tmp_path):
    with open(os.path.join(MONITORING, "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["hvd-pretrain"]["metrics_path"] == "/metrics"
    assert jobs["hvd-pretrain"]["static_configs"][0]["targets"][0].endswith(":8265")
    assert jobs["dcgm"]["static_configs"][0]["targets"][0].endswith(":9400")
    names = exported_names(tmp_path)
    for rule_file in config["rule_files"]:
        with open(os.path.join(MONITORING, rule_file)) as f:
            rules = yaml.safe_load(f)
        for group in rules["groups"]:
            for rule in group["rules"]:
                used = set(METRIC.findall(rule["expr"]))
                assert used and used <= names, (rule["alert"], used - names)
