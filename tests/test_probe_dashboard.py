"""The run page's "Downstream probe" charts: finetune/*.json parsed for the API, and drawn in headless Chromium."""

import json
import os
import statistics
import time

import pytest

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import api, probes, server, synthetic
from hvd_pretrain.telemetry.run import RunMonitor
from tests.test_monitor_browser import browser, no_js_errors, screenshot, wait_for  # noqa: F401 - fixture


def _row(source, step, accuracies, f1s):
    """A result row as hvd-finetune writes it: per-seed scores, mean and sample std over the seeds."""
    stat = lambda v: {"mean": statistics.mean(v), "std": statistics.stdev(v)}  # noqa: E731
    seeds = [{"seed": s, "accuracy": a, "f1": f} for s, a, f in zip((1, 2, 3), accuracies, f1s)]
    return {"source": source, "step": step, "seeds": seeds, "accuracy": stat(accuracies), "f1": stat(f1s)}


def _report(task="sentiment", freeze=False, lr=1e-4):
    results = [_row("runs/r/checkpoints/ckpt-%09d" % step, step, acc, f1) for step, acc, f1 in (
        (400, [0.70, 0.72, 0.74], [0.68, 0.70, 0.75]),
        (100, [0.55, 0.57, 0.56], [0.50, 0.52, 0.51]),
        (800, [0.80, 0.81, 0.79], [0.78, 0.80, 0.79]))]
    results.append(_row("random init (runs/r/checkpoints/ckpt-000000800)", None, [0.50, 0.51, 0.49],
                        [0.40, 0.45, 0.42]))
    return {"task": task, "train_examples": 400, "dev_examples": 200, "pair": False, "labels": ["0", "1"],
            "f1_name": "F1 of '1'", "model": {"hidden_size": 128},
            "config": {"learning_rate": lr, "freeze_encoder": freeze, "seeds": "1,2,3", "epochs": 3.0},
            "results": results}


def _write(run_dir, name, content):
    os.makedirs(os.path.join(run_dir, rundir.FINETUNE), exist_ok=True)
    with open(os.path.join(run_dir, rundir.FINETUNE, name), "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))


def test_a_results_file_becomes_points_by_step_and_a_random_init_reference(tmp_path):
    _write(str(tmp_path), "sentiment.json", _report())
    out = probes.read_probes(str(tmp_path))
    assert out["notes"] == []
    (task,) = out["tasks"]
    assert task["task"] == "sentiment" and task["file"] == "finetune/sentiment.json"
    assert (task["protocol"], task["learning_rate"], task["seeds"]) == ("fine-tuned", 1e-4, 3)
    assert [p["step"] for p in task["points"]] == [100, 400, 800]  # sorted by the pre-training step
    assert task["points"][1]["accuracy"]["mean"] == pytest.approx(0.72)
    assert task["points"][1]["accuracy"]["std"] == pytest.approx(0.02)
    assert task["points"][2]["f1"]["mean"] == pytest.approx(0.79)
    (ref,) = task["references"]
    assert ref["random"] and ref["accuracy"]["mean"] == pytest.approx(0.50)
    assert ref["f1"]["std"] == pytest.approx(statistics.stdev([0.40, 0.45, 0.42]))


def test_frozen_protocol_and_a_file_without_f1(tmp_path):
    report = _report("nli", freeze=True, lr=1e-3)
    for row in report["results"]:
        del row["f1"]
    _write(str(tmp_path), "nli-frozen.json", report)
    (task,) = probes.read_probes(str(tmp_path))["tasks"]
    assert task["protocol"] == "frozen encoder" and task["learning_rate"] == 1e-3
    assert task["id"] == "nli-frozen" and task["task"] == "nli"
    assert all(p["f1"] is None for p in task["points"])


def test_malformed_files_are_skipped_with_a_note_naming_each(tmp_path):
    run = str(tmp_path)
    _write(run, "good.json", _report("good"))
    _write(run, "broken.json", '{"task": "broken", "results": [')
    _write(run, "list.json", [1, 2])
    _write(run, "empty.json", {"task": "empty", "results": [{"source": "x", "step": 5, "accuracy": "high"}]})
    partial = _report("partial")
    partial["results"][0]["accuracy"] = {"mean": None}
    _write(run, "partial.json", partial)
    out = probes.read_probes(run)
    assert [t["task"] for t in out["tasks"]] == ["good", "partial"]
    assert len(out["tasks"][1]["points"]) == 2
    notes = out["notes"]
    assert len(notes) == 4, notes
    by_file = {n.split(":")[0]: n for n in notes}
    assert "not valid JSON" in by_file["finetune/broken.json"]
    assert "not a JSON object" in by_file["finetune/list.json"]
    assert "no result with a numeric accuracy" in by_file["finetune/empty.json"]
    assert "1 result row" in by_file["finetune/partial.json"]
    assert all("\n" not in n for n in notes)


def test_no_finetune_directory_gives_nothing(tmp_path):
    assert probes.read_probes(str(tmp_path)) == {"tasks": [], "notes": []}
    os.makedirs(os.path.join(str(tmp_path), rundir.FINETUNE))
    assert probes.read_probes(str(tmp_path)) == {"tasks": [], "notes": []}


def test_run_detail_carries_the_probes_and_follows_file_changes(tmp_path):
    synthetic.write_run(str(tmp_path), "r", steps=5)
    run = RunMonitor(os.path.join(str(tmp_path), "r"))
    run.refresh()
    assert api.run_detail(run)["probes"] == {"tasks": [], "notes": []}
    _write(run.dir.root, "sentiment.json", _report())
    detail = api.run_detail(run)
    assert [p["step"] for p in detail["probes"]["tasks"][0]["points"]] == [100, 400, 800]
    json.dumps(detail, allow_nan=False)  # what the server and static reports send
    time.sleep(0.01)
    _write(run.dir.root, "sentiment.json", "not json")
    detail = api.run_detail(run)
    assert detail["probes"]["tasks"] == [] and detail["probes"]["notes"][0].startswith("finetune/sentiment.json:")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_page_draws_a_probe_chart_per_task(tmp_path, browser):  # noqa: F811 - the fixture
    synthetic.write_run(str(tmp_path), "probed", steps=12, t0=time.time() - 200, interval=10)
    run_dir = os.path.join(str(tmp_path), "probed")
    _write(run_dir, "sentiment.json", _report())
    _write(run_dir, "nli.json", dict(_report("nli", freeze=True, lr=1e-3), results=_report()["results"][:2]))
    _write(run_dir, "broken.json", "{")
    synthetic.write_run(str(tmp_path), "plain", steps=12, t0=time.time() - 200, interval=10)
    srv = server.start_in_thread(str(tmp_path), refresh_interval=0.3)
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        browser.get(url + "/run/probed?refresh=1000")
        charts = wait_for(browser, """
            const c = window.hvdCharts || {};
            if (!c["probe-sentiment"] || !c["probe-nli"]) return null;
            return ["probe-sentiment", "probe-nli"].map(id => ({
                title: document.querySelector("#chart-" + id + " .u-title").textContent,
                x: c[id].data[0], acc: c[id].data[1], points: HVD.pointsIn(c[id]),
                labels: c[id].series.slice(1).map(s => s.label),
                legend: Array.from(document.querySelectorAll("#chart-" + id + " .u-value")).map(e => e.textContent)}));
        """, what="probe charts")
        notes = browser.execute_script(
            "return Array.from(document.querySelectorAll('li.probe-note')).map(e => e.textContent)")
        screenshot(browser, "run-probe")
        no_js_errors(browser)
        sentiment, nli = charts
        assert sentiment["x"] == [100, 400, 800] and sentiment["points"] == 3
        assert sentiment["acc"] == pytest.approx([0.56, 0.72, 0.80])
        assert "sentiment" in sentiment["title"] and "fine-tuned" in sentiment["title"]
        assert "lr 0.0001" in sentiment["title"]
        assert sentiment["labels"] == ["accuracy", "F1 of '1'", "random init accuracy", "random init F1 of '1'"]
        assert "frozen encoder" in nli["title"] and nli["x"] == [100, 400]
        assert notes == [n for n in notes if n.startswith("finetune/broken.json:")] and len(notes) == 1

        browser.get(url + "/run/plain?refresh=1000")
        wait_for(browser, "return window.hvdCharts && window.hvdCharts.loss", what="the plain run's charts")
        shown = browser.execute_script("""
            return [Object.keys(window.hvdCharts).filter(k => k.startsWith("probe-")).length,
                    document.querySelectorAll("li.probe-note").length,
                    Array.from(document.querySelectorAll("h2"))
                         .some(h => !h.hidden && h.textContent.includes("Downstream"))];
        """)
        assert shown == [0, 0, False]
        no_js_errors(browser)
    finally:
        srv.shutdown()
        srv.server_close()



def test_static_report_embeds_the_probe_results(tmp_path):
    from hvd_pretrain.telemetry import report
    synthetic.write_run(str(tmp_path), "r", steps=5)
    run = RunMonitor(os.path.join(str(tmp_path), "r"))
    run.refresh()
    _write(run.dir.root, "sentiment.json", _report())
    page = report.build([run])
    data = json.loads(page.split('<script type="application/json" id="report-data">')[1].split("</script>")[0])
    (task,) = data["runs"][0]["detail"]["probes"]["tasks"]
    assert task["task"] == "sentiment" and len(task["points"]) == 3
    assert "renderProbes" in page  # the run view that draws them is inlined
