"""Eval charts on hvd-monitor's run and compare pages, in headless Chromium, on a real run's eval records."""

import os

import pytest

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import server
from tests.test_monitor_browser import browser, no_js_errors, screenshot, wait_for  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(400)
def test_run_and_compare_pages_chart_the_eval_records(evaluated_run, browser):  # noqa: F811 - the fixture
    # conftest.evaluated_run: a real 4-step run evaluated after every step, alone in its runs directory.
    eval_run = evaluated_run["runs_dir"]
    evals = [r for r in rundir.read_jsonl(os.path.join(eval_run, "evaluated", "metrics.jsonl"))[0]
             if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [0, 1, 2, 3, 4]
    srv = server.start_in_thread(eval_run, refresh_interval=0.3)
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        browser.get(url + "/run/evaluated?refresh=1000")
        counts = wait_for(browser, """
            const c = window.hvdCharts || {};
            if (!c.eval_loss || !c.eval_accuracy) return null;
            return [HVD.pointsIn(c.eval_loss), HVD.pointsIn(c.eval_accuracy),
                    c.eval_accuracy.series.slice(1).map(s => s.label)];
        """, what="eval charts")
        assert counts[0] == counts[1] == len(evals)
        assert counts[2] == ["eval.mlm_accuracy", "eval.nsp_accuracy"]
        screenshot(browser, "run-eval")
        no_js_errors(browser)
        browser.get(url + "/compare?refresh=1000&runs=evaluated&metric=eval.mlm_accuracy")
        n = wait_for(browser, "return window.hvdCharts && window.hvdCharts.compare && "
                              "HVD.pointsIn(window.hvdCharts.compare)", what="comparison of eval.mlm_accuracy")
        assert n == len(evals)
        no_js_errors(browser)
    finally:
        srv.shutdown()
        srv.server_close()
