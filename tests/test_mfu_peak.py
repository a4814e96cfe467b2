"""MFU's denominator: the best rate measured, never a single moment, and MFU never above 1."""

import json

import pytest

from hvd_pretrain.train.peak import PeakEstimate, peak_cache_path


def _measurements(*values):
    values = list(values)
    return lambda: values.pop(0)


def test_a_busy_first_measurement_is_replaced_by_a_later_better_one():
    peak = PeakEstimate(measure=_measurements(90e9, 190e9, 150e9))
    assert peak.flops == 90e9  # the machine was busy at start-up
    assert peak.mfu(76e9) == pytest.approx(76 / 90)
    peak.remeasure()
    assert peak.flops == 190e9 and peak.mfu(76e9) == pytest.approx(0.4)
    peak.remeasure()  # busy again: the estimate keeps the best
    assert peak.flops == 190e9 and peak.measurements == 3


def test_the_best_measurement_is_kept_across_runs(tmp_path):
    cache = str(tmp_path / "peak" / "host.json")
    PeakEstimate(measure=_measurements(190e9), cache_path=cache)
    busy = PeakEstimate(measure=_measurements(95e9), cache_path=cache)
    assert busy.flops == 190e9
    with open(cache) as f:
        assert json.load(f)["flops"] == 190e9  # a lower measurement never overwrites the record
    faster = PeakEstimate(measure=_measurements(200e9), cache_path=cache)
    assert faster.flops == 200e9
    with open(cache) as f:
        assert json.load(f)["flops"] == 200e9


def test_achieved_work_above_the_measured_peak_raises_the_peak():
    peak = PeakEstimate(measure=_measurements(100e9))
    assert peak.mfu(150e9) == 1.0 and peak.flops == 150e9
    assert peak.mfu(75e9) == 0.5


def test_a_datasheet_peak_is_fixed():
    peak = PeakEstimate(fixed=125e12, source="V100 fp16")
    assert not peak.measured and not peak.due(1)
    assert peak.remeasure() == 125e12 and peak.mfu(50e12) == 0.4
    with pytest.raises(ValueError):
        PeakEstimate()


def test_remeasured_after_windows_one_two_four_eight():
    peak = PeakEstimate(measure=lambda: 1e9)
    assert [w for w in range(1, 20) if peak.due(w)] == [1, 2, 4, 8, 16]


def test_cache_path_separates_thread_counts_and_versions(tmp_path):
    a = peak_cache_path(str(tmp_path), 1, "2.18.1")
    assert a != peak_cache_path(str(tmp_path), 2, "2.18.1") and a != peak_cache_path(str(tmp_path), 1, "2.19.0")
    assert a.startswith(str(tmp_path / "peak")) and a.endswith(".json") and " " not in a


def test_windows_report_mfu_against_the_best_peak_so_far(tmp_path):
    from hvd_pretrain.rundir import RunDir
    from hvd_pretrain.train.metrics import MetricsLogger
    from hvd_pretrain.train.plan import BatchPlan
    measured = []

    def measure():
        measured.append(len(measured))
        return [1e3, 1e12][min(len(measured) - 1, 1)]  # start-up under load, then idle
    peak = PeakEstimate(measure=measure)
    logger = MetricsLogger(RunDir(str(tmp_path)).ensure(), 0, BatchPlan(4, 1, 1, 10, 0, 64), True,
                           printer=lambda *a: None, flops_per_example=1.0, peak=peak)
    records = []
    for step in range(1, 4):
        logger.window.add(0.01, 0.0, {"loss": 1.0, "losses": {"mlm": 1.0}})
        records.append(logger.log_window(step, 1e-4))
    assert records[0]["mfu"] == 1.0  # achieved beat the loaded measurement: capped, the peak raised
    assert records[0]["peak_tflops_per_rank"] == pytest.approx(records[0]["model_tflops_per_sec"])
    assert len(measured) == 3  # start-up, after window 1, after window 2
    assert records[1]["peak_tflops_per_rank"] == 1.0 and records[2]["mfu"] < 1e-3
    assert all(0 < r["mfu"] <= 1.0 for r in records)
