"""All the runs the monitor watches: discovery under a runs directory plus explicit paths."""

import os
import threading
import time

from hvd_pretrain.numbered import numbered_key
from hvd_pretrain.telemetry.run import RunMonitor
from hvd_pretrain.rundir import RUN_MARKERS



def looks_like_run(path):
    return any(os.path.exists(os.path.join(path, marker)) for marker in RUN_MARKERS)


class RunStore:
    """Runs found in `root` (one level deep) and in `paths`, keyed by unique name."""

    def __init__(self, root=None, paths=(), min_interval=1.0):
        self.root = os.path.abspath(root) if root else None
        self.paths = [os.path.abspath(p) for p in paths]
        self.min_interval = min_interval
        self._runs = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._last_refresh = 0.0

    def _candidates(self):
        found = list(self.paths)
        if self.root:
            try:
                entries = sorted(os.scandir(self.root), key=lambda e: numbered_key(e.name))
            except OSError:
                entries = []
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if looks_like_run(entry.path):
                    found.append(entry.path)
        return found

    def discover(self):
        candidates = self._candidates()
        with self._lock:
            by_path = {run.dir.root: run for run in self._runs.values()}
            runs = {}
            for path in candidates:
                run = by_path.get(path)
                if run is None:
                    run = RunMonitor(path)
                name = run.name
                if name in runs and runs[name] is not run:
                    name = "%s~%d" % (run.name, len(runs))
                    run.name = name
                runs[name] = run
            self._runs = runs

    def refresh(self, force=False):
        """Discover runs and read what changed, at most once per `min_interval` unless forced."""
        with self._refresh_lock:
            if not force and time.monotonic() - self._last_refresh < self.min_interval:
                return False
            self.discover()
            changed = False
            runs = self.runs()
            for run in runs:  # first a look at the end of every large file: the overview is right at once
                changed |= run.preview()
            for run in runs:
                changed |= run.refresh()
            self._last_refresh = time.monotonic()
            return changed

    def runs(self):
        with self._lock:
            return list(self._runs.values())

    def get(self, name):
        with self._lock:
            return self._runs.get(name)

    def names(self):
        with self._lock:
            return list(self._runs)


class Refresher(threading.Thread):
    """Refreshes a store in the background every `interval` seconds."""

    def __init__(self, store, interval=2.0):
        super().__init__(name="hvd-monitor-refresh", daemon=True)
        self.store = store
        self.interval = interval
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            self.store.refresh(force=True)
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
