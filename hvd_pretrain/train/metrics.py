"""Throughput and loss metrics, one record per logging window.

Throughput is always a total over elapsed wall time (steps / seconds, examples
/ seconds), never an average of per-step rates, which would overweight fast
steps. Only applied optimizer steps count as steps and examples: a step skipped
for non-finite gradients is counted in `skipped_steps`, and its loss is left out
of the window's mean (a window of skipped steps only reports their loss).
"""

import socket
import statistics
import time

from hvd_pretrain.rundir import append_jsonl


class WindowMeter:
    """Accumulates one logging window on one rank, from plain Python numbers.

    The trainer adds each step's times (`add_time`) and, at each read of the device window
    (train/window.py), the sums since the previous read (`add_read`). `add` takes one step's
    results as a dict (AccumulatingStep.step) for callers that read every step.
    """

    def __init__(self):
        self.reset(time.time())

    def reset(self, now):
        self.start = now
        self.steps = 0
        self.step_time = 0.0
        self.data_wait = 0.0
        self.nonpad_tokens = 0.0
        self.loss_sum = 0.0
        self.objective_sums = {}
        self.accuracy_sums = {}
        self.skipped = 0
        self.skipped_loss = None

    @property
    def applied(self):
        """Optimizer steps of the window that updated the weights."""
        return self.steps - self.skipped

    def add_time(self, step_time, data_wait):
        """One optimizer step's wall time and the part of it spent waiting for data (seconds)."""
        self.steps += 1
        self.step_time += step_time
        self.data_wait += data_wait

    def add_read(self, read):
        """The sums of a device-window read (a train/window.py WindowRead) covering steps already timed."""
        self.skipped += read.skipped
        if read.skipped:
            self.skipped_loss = read.skipped_loss
        if not read.applied:
            return
        self.nonpad_tokens += read.sums["nonpad_tokens"]
        self.loss_sum += read.sums["loss"]
        for key, value in read.sums.items():
            kind, _, name = key.partition("/")
            sums = {"loss": self.objective_sums, "accuracy": self.accuracy_sums}.get(kind if name else None)
            if sums is not None:
                sums[name] = sums.get(name, 0.0) + value

    def add(self, step_time, data_wait, info):
        """One step's times and its results (a dict with loss, losses, accuracy, nonpad_tokens, skipped)."""
        self.add_time(step_time, data_wait)
        if info.get("skipped"):
            self.skipped += 1
            self.skipped_loss = info["loss"]
            return
        self.nonpad_tokens += info.get("nonpad_tokens", 0.0)
        self.loss_sum += info["loss"]
        for name, value in info["losses"].items():
            self.objective_sums[name] = self.objective_sums.get(name, 0.0) + value
        for name, value in info.get("accuracy", {}).items():
            self.accuracy_sums[name] = self.accuracy_sums.get(name, 0.0) + value


def straggler_summary(per_rank):
    """per_rank: list of (step_time, data_wait) means, indexed by rank."""
    step_times = [float(r[0]) for r in per_rank]
    waits = [float(r[1]) for r in per_rank]
    slowest = max(range(len(step_times)), key=lambda r: step_times[r])
    return {
        "step_time": {"min": min(step_times), "median": statistics.median(step_times), "max": max(step_times)},
        "data_wait": {"min": min(waits), "median": statistics.median(waits), "max": max(waits)},
        "slowest_rank": slowest,
    }


class MetricsLogger:
    """Writes metrics.jsonl (rank 0), ranks/<r>.jsonl (every rank) and TensorBoard scalars."""

    def __init__(self, rundir, rank, plan, is_root, gather=None, tb_writer=None, printer=print, end_step=None,
                 flops_per_example=None, peak=None):
        self.rundir = rundir
        self.rank = rank
        self.plan = plan
        self.is_root = is_root
        self.gather = gather
        self.tb = tb_writer
        self.printer = printer
        self.host = socket.gethostname()
        self.end_step = end_step if end_step is not None else plan.num_train_steps
        self.flops_per_example = flops_per_example
        self.peak = peak  # a PeakEstimate of one rank (rank 0), or None
        self.run_start = time.time()
        self.windows = 0
        self.window = WindowMeter()

    def event(self, name, step, **extra):
        if self.is_root:
            append_jsonl(self.rundir.metrics, dict(extra, time=time.time(), step=int(step), event=name))

    def log_window(self, step, lr, extra=None):
        """Close the window ending at optimizer step `step`; returns the record on rank 0."""
        now = time.time()
        w = self.window
        elapsed = max(now - w.start, 1e-9)
        steps = max(w.steps, 1)
        mean_step = w.step_time / steps
        mean_wait = w.data_wait / steps
        append_jsonl(self.rundir.rank_log(self.rank), {
            "time": now, "step": int(step), "rank": self.rank, "host": self.host,
            "step_time": mean_step, "data_wait": mean_wait, "steps": w.steps})
        ranks = None
        if self.gather is not None:
            ranks = straggler_summary(self.gather([mean_step, mean_wait]))
        record = None
        if self.is_root:
            plan = self.plan
            applied = max(w.applied, 1)
            step_rate = w.applied / elapsed
            examples = w.applied * plan.global_batch
            remaining = max(self.end_step - step, 0)
            record = {
                "time": now,
                "step": int(step),
                "num_train_steps": self.end_step,
                "global_step_per_sec": step_rate,
                "examples_per_sec": examples / elapsed,
                "tokens_per_sec": examples * plan.max_seq_length / elapsed,
                "tokens_per_sec_nonpad": w.nonpad_tokens / elapsed,
                "loss": w.loss_sum / applied if w.applied else w.skipped_loss,
                "losses": {k: v / applied for k, v in w.objective_sums.items()},
                "accuracy": {k: v / applied for k, v in w.accuracy_sums.items()},
                "skipped_steps": w.skipped,
                "lr": lr,
                "elapsed": now - self.run_start,
                "eta_sec": remaining / step_rate if step_rate > 0 else None,
                "world_size": plan.world_size,
                "accum_steps": plan.accum_steps,
                "global_batch": plan.global_batch,
                "step_time": mean_step,
                "data_wait": mean_wait,
            }
            if ranks is not None:
                record["ranks"] = ranks
            if self.flops_per_example:
                achieved = record["examples_per_sec"] * self.flops_per_example
                record["model_tflops_per_sec"] = achieved / 1e12
                mfu = self.peak.mfu(achieved / plan.world_size) if self.peak is not None else None
                if mfu is not None and w.applied:
                    record["mfu"] = mfu
                    record["peak_tflops_per_rank"] = self.peak.flops / 1e12
            if extra:
                record.update(extra)
            append_jsonl(self.rundir.metrics, record)
            self.printer(format_record(record))
            self._tensorboard(record)
        self.windows += 1
        if self.peak is not None and self.peak.due(self.windows):
            self.peak.remeasure()  # between windows, so its time is charged to no window
            now = time.time()
        self.window.reset(now)
        return record

    def _tensorboard(self, r):
        if self.tb is None:
            return
        from hvd_pretrain.tfcompat import tf
        with self.tb.as_default(step=r["step"]):
            tf.summary.scalar("throughput/global_step_per_sec", r["global_step_per_sec"])
            tf.summary.scalar("throughput/examples_per_sec", r["examples_per_sec"])
            tf.summary.scalar("throughput/tokens_per_sec", r["tokens_per_sec"])
            tf.summary.scalar("throughput/tokens_per_sec_nonpad", r["tokens_per_sec_nonpad"])
            tf.summary.scalar("loss/total", r["loss"])
            for name, value in r["losses"].items():
                tf.summary.scalar("loss/" + name, value)
            for name, value in r.get("accuracy", {}).items():
                tf.summary.scalar("accuracy/" + name, value)
            tf.summary.scalar("train/learning_rate", r["lr"])
            for key, tag in (("grad_norm", "train/grad_norm"), ("loss_scale", "train/loss_scale"),
                             ("mfu", "throughput/mfu")):
                if key in r:
                    tf.summary.scalar(tag, r[key])
            if "ranks" in r:
                tf.summary.scalar("stragglers/step_time_max", r["ranks"]["step_time"]["max"])
                tf.summary.scalar("stragglers/step_time_median", r["ranks"]["step_time"]["median"])
                tf.summary.scalar("stragglers/data_wait_max", r["ranks"]["data_wait"]["max"])
        self.tb.flush()


def format_record(r):
    losses = ", ".join("%s %.4f" % kv for kv in sorted(r["losses"].items()))
    eta = r.get("eta_sec")
    line = ("step %d/%d | %.2f step/s | %.1f examples/s | %.0f tokens/s | loss %.4f (%s) | lr %.2e | eta %s"
            % (r["step"], r["num_train_steps"], r["global_step_per_sec"], r["examples_per_sec"],
               r["tokens_per_sec"], r["loss"], losses, r["lr"], "%.0fs" % eta if eta is not None else "-"))
    if "mfu" in r:
        line += " | mfu %.1f%%" % (100 * r["mfu"])
    if "loss_scale" in r:
        line += " | scale %g" % r["loss_scale"]
    if r.get("skipped_steps"):
        line += " | skipped %d (non-finite)" % r["skipped_steps"]
    return line
