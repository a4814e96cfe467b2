"""Host metrics of the machine the monitor runs on: CPU, memory, disk and network
through psutil, GPU utilisation and memory through NVML when it is present.

Sampled by a background thread into a fixed-size ring, so a request never waits
on a measurement.
"""

import collections
import socket
import threading
import time

import psutil

HISTORY = 1800  # samples kept (an hour at the default 2 s)


class _Nvml:
    """GPU readings through the optional `pynvml` module (nvidia-ml-py); absent => no GPUs."""

    def __init__(self):
        self.handles = []
        self.error = None
        try:
            import pynvml
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.nvml = pynvml
        except ImportError:
            self.error = "NVML not available (install nvidia-ml-py for GPU metrics)"
        except Exception as e:  # no driver, no GPUs: report it, keep sampling the rest
            self.error = "NVML: %s" % e

    def sample(self):
        out = {}
        for i, handle in enumerate(self.handles):
            try:
                util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                out["gpu%d_util" % i] = float(util.gpu)
                out["gpu%d_mem_used_gb" % i] = mem.used / 1e9
            except Exception as e:
                self.error = "NVML: %s" % e
        return out


class SystemSampler(threading.Thread):
    def __init__(self, interval=2.0, history=HISTORY):
        super().__init__(name="hvd-monitor-system", daemon=True)
        self.interval = interval
        self.samples = collections.deque(maxlen=history)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.host = socket.gethostname()
        self.nvml = None
        self._last = None

    def _counters(self):
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        return (time.time(),
                (disk.read_bytes, disk.write_bytes) if disk else (0, 0),
                (net.bytes_recv, net.bytes_sent) if net else (0, 0))

    def sample(self):
        now, disk, net = self._counters()
        mem = psutil.virtual_memory()
        row = {"time": now, "cpu_percent": psutil.cpu_percent(None), "mem_percent": mem.percent,
               "mem_used_gb": (mem.total - mem.available) / 1e9}
        if self._last is not None:
            dt = max(1e-6, now - self._last[0])
            row["disk_read_mb_s"] = (disk[0] - self._last[1][0]) / dt / 1e6
            row["disk_write_mb_s"] = (disk[1] - self._last[1][1]) / dt / 1e6
            row["net_recv_mb_s"] = (net[0] - self._last[2][0]) / dt / 1e6
            row["net_sent_mb_s"] = (net[1] - self._last[2][1]) / dt / 1e6
        self._last = (now, disk, net)
        if self.nvml is None:
            self.nvml = _Nvml()
        row.update(self.nvml.sample())
        with self.lock:
            self.samples.append(row)
        return row

    def run(self):
        psutil.cpu_percent(None)  # the first reading is meaningless; prime it
        while not self.stopped.is_set():
            try:
                self.sample()
            except Exception:  # a failing counter must not kill the dashboard
                pass
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()

    def payload(self):
        with self.lock:
            rows = list(self.samples)
        keys = sorted({k for row in rows for k in row if k != "time"})
        return {"host": self.host, "gpu_note": self.nvml.error if self.nvml else None,
                "x": [row["time"] for row in rows],
                "series": {k: [row.get(k) for row in rows] for k in keys}}
