"""Host metrics: psutil always, GPUs through NVML when the pynvml module is importable."""

import sys
import types

from hvd_pretrain.telemetry import system


def test_host_sample_has_cpu_memory_disk_and_network():
    sampler = system.SystemSampler()
    sampler.sample()
    row = sampler.sample()  # rates need two readings
    for key in ("cpu_percent", "mem_percent", "mem_used_gb", "disk_read_mb_s", "disk_write_mb_s",
                "net_recv_mb_s", "net_sent_mb_s"):
        assert isinstance(row[key], float), key
    payload = sampler.payload()
    assert payload["host"] and len(payload["x"]) == 2
    assert len(payload["series"]["cpu_percent"]) == 2


def test_gpu_readings_through_nvml(monkeypatch):
    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetCount = lambda: 2
    fake.nvmlDeviceGetHandleByIndex = lambda i: i
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=40 + h)
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2e9)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = system.SystemSampler()
    row = sampler.sample()
    assert row["gpu0_util"] == 40.0 and row["gpu1_util"] == 41.0
    assert row["gpu1_mem_used_gb"] == 4.0
    assert sampler.payload()["gpu_note"] is None


def test_no_nvml_is_reported_not_fatal(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    sampler = system.SystemSampler()
    row = sampler.sample()
    assert not any(k.startswith("gpu") for k in row)
    assert "NVML not available" in sampler.payload()["gpu_note"]
