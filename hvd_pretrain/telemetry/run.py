"""One run directory as the monitor sees it, refreshed incrementally.

`RunMonitor.refresh()` reads only what was appended to metrics.jsonl and
ranks/<r>.jsonl since the last call, and re-reads job.json / plan.json only
when their size or mtime changed. Nothing here raises on bad files: problems
are collected in `problems()` and shown next to the run.
"""

import math
import os
import threading

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import jsonl
from hvd_pretrain.telemetry.jsonl import JsonlTail
from hvd_pretrain.telemetry.series import NAN, Columns, flatten

MAX_EVENTS = 500
PREVIEW_BYTES = 256 << 10
# Keys whose change between records marks a phase change on the time axis.
PHASE_KEYS = ("phase", "max_seq_length", "world_size", "global_batch", "accum_steps")
RANK_KEYS = ("time", "step", "step_time", "data_wait")


def _short(value):
    return "%d" % value if math.isfinite(value) and value == int(value) else "%g" % value


class JsonFile:
    """A small JSON file re-read only when it changed; keeps the last good content."""

    def __init__(self, path):
        self.path = path
        self.signature = None
        self.content = None
        self.unreadable = False

    def refresh(self):
        try:
            st = os.stat(self.path)
        except OSError:
            self.signature, self.content, self.unreadable = None, None, False
            return False
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self.signature:
            return False
        self.signature = signature
        content = rundir.read_json(self.path)
        if isinstance(content, dict):
            self.content, self.unreadable = content, False
        else:
            self.unreadable = True  # half-written or not an object: keep the last good copy
        return True


class RankLog:
    """ranks/<r>.jsonl of one rank: step and data-wait times."""

    def __init__(self, rank, path):
        self.rank = rank
        self.tail = JsonlTail(path)
        self.cols = Columns(max_columns=len(RANK_KEYS))
        self.host = None

    def refresh(self, lock):
        changed = False
        while True:
            records, reset, more = self.tail.poll()
            if not records and not reset:
                return changed
            for rec in records[-1:]:
                host = rec.get("host")
                if isinstance(host, str):
                    self.host = host
            with lock:
                if reset:
                    self.cols = Columns(max_columns=len(RANK_KEYS))
                self.cols.extend_fields(records, RANK_KEYS)
            changed = True
            if not more:
                return changed


class RunMonitor:
    """Everything the dashboard knows about one run directory."""

    def __init__(self, root):
        self.dir = rundir.RunDir(os.path.abspath(root))
        self.name = self.dir.name
        self.lock = threading.RLock()
        self.version = 0
        self._reset_metrics()
        self.tail = JsonlTail(self.dir.metrics)
        self.job = JsonFile(self.dir.job)
        self.plan = JsonFile(self.dir.plan)
        self.ranks = {}
        self.cache = {}  # computed views of this run, each tagged with the version it was made from
        self.last_checkpoint_time = None
        self.refresh_error = None

    def _reset_metrics(self):
        self.metrics = Columns()
        self.events = []
        self.latest = {}  # last value seen for every key, including sparse ones
        self.latest_strings = {}
        self.last_record = {}
        self.preview_end = 0     # while reading a backlog, `latest` comes from a look at the file's end
        self._backlog_latest = {}

    def preview(self):
        """Before a large metrics.jsonl is read in full, take `latest` from its last records,
        so the overview is right at once while the history loads behind it."""
        if self.tail.polls or self.preview_end:
            return False
        try:
            if os.path.getsize(self.dir.metrics) <= PREVIEW_BYTES:
                return False
            records, end = jsonl.read_tail(self.dir.metrics, PREVIEW_BYTES)
            latest = {}
            for rec in records:
                latest.update(flatten(rec))
        except Exception:  # the full read will report whatever is wrong with the file
            return False
        if not records:
            return False
        with self.lock:
            self.latest, self.last_record, self.preview_end = latest, records[-1], end
            self.version += 1
        return True

    # ---- reading -------------------------------------------------------

    def refresh(self):
        """Read what changed on disk. Returns True if anything new was seen."""
        changed = False
        try:
            changed |= self._refresh_metrics()
            changed |= self._refresh_ranks()
            changed |= self.job.refresh()
            changed |= self.plan.refresh()
            self.last_checkpoint_time = self._scan_checkpoints()
            self.refresh_error = None
        except Exception as e:  # a monitor must survive any file it finds
            self.refresh_error = "%s: %s" % (type(e).__name__, e)
        if changed:
            with self.lock:
                self.version += 1
        return changed

    def _refresh_metrics(self):
        changed = False
        while True:
            records, reset, more = self.tail.poll()
            if not records and not reset:
                return changed
            rows = [flatten(rec) for rec in records]
            with self.lock:
                if reset:
                    self._reset_metrics()
                self._ingest(records, rows)
                self.version += 1
            changed = True
            if not more:
                return changed

    def _ingest(self, records, rows):
        start = self.metrics.n
        self.metrics.extend(rows)
        times = self.metrics.tail("time", len(records))
        steps = self.metrics.tail("step", len(records))

        def at(row):
            t = times[row - start] if len(times) else NAN
            s = steps[row - start] if len(steps) else NAN
            return (float(t) if math.isfinite(t) else None), (int(s) if math.isfinite(s) else None)

        for i, rec in enumerate(records):
            if "event" in rec and isinstance(rec["event"], str) and rec["event"]:
                self._add_event(*at(start + i), rec["event"], rec["event"])
            if "phase" in rec and isinstance(rec["phase"], (str, int, float)):
                before = self.latest_strings.get("phase")
                if before is not None and before != rec["phase"]:
                    self._add_event(*at(start + i), "phase", "phase %s \u2192 %s" % (before, rec["phase"]))
                self.latest_strings["phase"] = rec["phase"]
        backlog = self.preview_end > 0
        latest = self._backlog_latest if backlog else self.latest
        for key in PHASE_KEYS[1:]:
            for row, old, new in self.metrics.changes(key, start, latest.get(key)):
                self._add_event(*at(row), "phase", "%s %s \u2192 %s" % (key, _short(old), _short(new)))
        for key in self.metrics.keys():
            value = self.metrics.last_in(key, start)
            if value is not None:
                latest[key] = value
        if not backlog:
            self.last_record = records[-1]
        elif self.tail.offset >= self.preview_end:  # caught up with the preview: back to normal
            self.latest, self._backlog_latest, self.preview_end = latest, {}, 0
            self.last_record = records[-1]

    def _add_event(self, time, step, kind, label):
        self.events.append({"time": time, "step": step, "kind": kind, "label": label})
        if len(self.events) > MAX_EVENTS:
            # keep every non-checkpoint event, drop the oldest checkpoints first
            for i, ev in enumerate(self.events):
                if ev["kind"] == "checkpoint":
                    del self.events[i]
                    break
            else:
                del self.events[0]

    def _refresh_ranks(self):
        changed = False
        try:
            entries = list(os.scandir(self.dir.ranks_dir))
        except OSError:
            return False
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext != ".jsonl" or not stem.isdigit():
                continue
            rank = int(stem)
            log = self.ranks.get(rank)
            if log is None:
                log = RankLog(rank, entry.path)
                with self.lock:  # readers iterate self.ranks under the lock
                    self.ranks[rank] = log
            changed |= log.refresh(self.lock)
        return changed

    def _scan_checkpoints(self):
        newest = None
        try:
            for entry in os.scandir(self.dir.checkpoints):
                if entry.name.startswith((".", "tmp")):
                    continue
                mtime = entry.stat().st_mtime
                newest = mtime if newest is None or mtime > newest else newest
        except OSError:
            pass
        for ev in reversed(self.events):
            if ev["kind"] == "checkpoint" and ev["time"] is not None:
                newest = ev["time"] if newest is None else max(newest, ev["time"])
                break
        return newest

    # ---- derived facts -------------------------------------------------

    def last_heartbeat(self):
        """Time of the newest record from rank 0 or any rank (None if there is none)."""
        with self.lock:
            times = [self.latest.get("time")]
            logs = list(self.ranks.values())
        times += [log.cols.last("time") for log in logs]
        times = [t for t in times if t is not None]
        if not times and self.tail.exists:
            try:
                return os.path.getmtime(self.dir.metrics)
            except OSError:
                return None
        return max(times) if times else None

    def heartbeat_interval(self):
        """Median seconds between recent metrics records (None with fewer than 3)."""
        n = self.metrics.n
        if n < 3:
            return None
        t = self.metrics.tail("time", 21)
        t = t[t == t]
        if len(t) < 3:
            return None
        gaps = sorted(b - a for a, b in zip(t[:-1], t[1:]) if b >= a)
        return gaps[len(gaps) // 2] if gaps else None

    def problems(self):
        out = []
        if self.refresh_error:
            out.append("could not read run directory: %s" % self.refresh_error)
        if not self.tail.exists:
            out.append("no metrics.jsonl yet")
        elif self.metrics.n == 0 and self.tail.pending_bytes() == 0:
            out.append("metrics.jsonl is empty")
        if self.tail.bad_lines:
            out.append("metrics.jsonl: %d unreadable line(s) skipped" % self.tail.bad_lines)
        if self.tail.exists and 0 < self.tail.pending_bytes() < self.tail.chunk_bytes:
            out.append("metrics.jsonl ends with an incomplete line (%d bytes)" % self.tail.pending_bytes())
        if self.job.unreadable:
            out.append("job.json is unreadable (half-written?)%s"
                       % ("; showing its last good copy" if self.job.content else ""))
        if self.plan.unreadable:
            out.append("plan.json is unreadable (half-written?)")
        with self.lock:
            logs = list(self.ranks.items())
        bad_ranks = sorted(r for r, log in logs if log.tail.bad_lines)
        if bad_ranks:
            out.append("ranks/%s.jsonl: unreadable line(s) skipped" % ",".join(map(str, bad_ranks)))
        if self.metrics.dropped_keys:
            out.append("%d metric keys beyond the first %d ignored"
                       % (len(self.metrics.dropped_keys), self.metrics.max_columns))
        return out

    def loading(self):
        """True until metrics.jsonl was first read, and while a large backlog is being read."""
        if self.tail.polls == 0:
            return os.path.exists(self.dir.metrics)
        return self.tail.pending_bytes() >= self.tail.chunk_bytes
