"""/metrics: the per-run figures in Prometheus text format, labelled by run.

A custom collector reads the same summaries the dashboard shows, at scrape
time, so Prometheus and the web page can never disagree.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hvd_pretrain.telemetry import status

PREFIX = "hvd_pretrain_"

# (metric name, summary key, help)
GAUGES = (
    ("step", "step", "Last optimizer step reported by rank 0."),
    ("num_train_steps", "num_train_steps", "Planned number of optimizer steps."),
    ("progress_ratio", "progress", "Fraction of the planned steps done (0-1)."),
    ("global_step_per_sec", "global_step_per_sec", "Optimizer steps per second over the last logging window."),
    ("examples_per_sec", "examples_per_sec", "Training examples per second, all ranks."),
    ("tokens_per_sec", "tokens_per_sec", "Tokens per second, all ranks."),
    ("loss", "loss", "Total training loss of the last logging window."),
    ("learning_rate", "lr", "Learning rate at the last logging window."),
    ("loss_scale", "loss_scale", "Dynamic loss scale (mixed precision)."),
    ("mfu", "mfu", "Model FLOPs utilisation as reported by the trainer."),
    ("eta_seconds", "eta_sec", "Estimated seconds to the last step."),
    ("world_size", "world_size", "Number of Horovod ranks."),
    ("global_batch", "global_batch", "Examples per optimizer step, all ranks."),
    ("accum_steps", "accum_steps", "Gradient accumulation micro-steps per optimizer step."),
    ("last_heartbeat_timestamp_seconds", "last_heartbeat", "Unix time of the newest metrics record."),
    ("last_checkpoint_timestamp_seconds", "last_checkpoint", "Unix time of the newest checkpoint."),
    ("heartbeat_age_seconds", "heartbeat_age", "Seconds since the newest metrics record."),
    ("slowest_rank", "slowest_rank", "Rank the trainer reports as slowest."),
)


class RunCollector:
    def __init__(self, store):
        self.store = store

    def describe(self):
        return []

    def collect(self):
        now = time.time()
        runs = self.store.runs()
        summaries = [(run, status.summarize(run, now)) for run in runs]
        families = {}
        for name, key, text in GAUGES:
            fam = families[name] = GaugeMetricFamily(PREFIX + name, text, labels=["run"])
            for run, s in summaries:
                value = s.get(key)
                if value is None:
                    continue
                if key == "progress":
                    value = value / 100.0
                fam.add_metric([s["name"]], float(value))
        yield from families.values()
        state = GaugeMetricFamily(PREFIX + "run_state", "1 for the run's current state, 0 otherwise.",
                                  labels=["run", "state"])
        alert = GaugeMetricFamily(PREFIX + "run_alert", "1 if the run is failed, hung or stalled.", labels=["run"])
        restarts = CounterMetricFamily(PREFIX + "restarts", "Restarts done by the supervisor.", labels=["run"])
        rows = GaugeMetricFamily(PREFIX + "metrics_rows", "Records read from metrics.jsonl.", labels=["run"])
        losses = GaugeMetricFamily(PREFIX + "objective_loss", "Loss per objective (mlm, nsp, sop, rtd, ...).",
                                   labels=["run", "objective"])
        rank_time = GaugeMetricFamily(PREFIX + "rank_step_time_seconds", "Last step time reported by each rank.",
                                      labels=["run", "rank"])
        rank_wait = GaugeMetricFamily(PREFIX + "rank_data_wait_seconds", "Last input wait reported by each rank.",
                                      labels=["run", "rank"])
        evals = GaugeMetricFamily(PREFIX + "eval", "Metrics of the newest held-out evaluation (eval records of"
                                  " metrics.jsonl: loss, mlm_accuracy, ...).", labels=["run", "metric"])
        spread = GaugeMetricFamily(PREFIX + "step_time_seconds", "Step time across ranks (min/median/max).",
                                   labels=["run", "stat"])
        for run, s in summaries:
            name = s["name"]
            for st in status.STATES:
                state.add_metric([name, st], 1.0 if s["state"] == st else 0.0)
            alert.add_metric([name], 1.0 if s["alert"] else 0.0)
            if s["restarts"] is not None:
                restarts.add_metric([name], float(s["restarts"]))
            rows.add_metric([name], float(s["rows"]))
            with run.lock:
                latest = dict(run.latest)
                rank_last = {r: (log.cols.last("step_time"), log.cols.last("data_wait"))
                             for r, log in run.ranks.items()}
            for key, value in sorted(latest.items()):
                if key.startswith("losses."):
                    losses.add_metric([name, key[len("losses."):]], float(value))
                elif key.startswith("eval."):
                    evals.add_metric([name, key[len("eval."):]], float(value))
                elif key.startswith("ranks.step_time."):
                    spread.add_metric([name, key[len("ranks.step_time."):]], float(value))
            for rank, (step_time, wait) in sorted(rank_last.items()):
                if step_time is not None:
                    rank_time.add_metric([name, str(rank)], float(step_time))
                if wait is not None:
                    rank_wait.add_metric([name, str(rank)], float(wait))
        yield from (state, alert, restarts, rows, losses, evals, rank_time, rank_wait, spread)


def exposition(store):
    """The /metrics body (bytes) and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
