"""The dashboard in a real browser (headless Chromium) on real trainer output.

A module fixture trains for 40 steps with `horovodrun -np 2 hvd-pretrain` into a
temporary runs directory and adds a synthetic failed run (job.json from a
supervisor that gave up after a restart). The same real run also checks
/metrics and `hvd-monitor tensorboard --launch`. Screenshots go to
test-artifacts/monitor/.
"""

import http.client
import json
import os
import re
import shutil
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import server, synthetic
from tests import proc

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = os.path.join(proc.REPO, "test-artifacts", "monitor")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")
REAL = "real-np2"
FAILED = "synthetic-failed"

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("runs"))
    real = os.path.join(root, REAL)
    cmd = [os.path.join(proc.BIN, "horovodrun"), "-np", "2", "--gloo", "hvd-pretrain", "--run_dir=" + real,
           "--num_train_steps=40", "--log_every=4", "--micro_batch_size=8", "--dupe_factor=1",
           "--save_checkpoints_steps=20"]
    proc.run(cmd, timeout=400)
    synthetic.write_run(root, FAILED, steps=12, total=100, t0=time.time() - 900, interval=20, slow_rank=1,
                        job_state="failed", restarts=1)
    return root


@pytest.fixture(scope="module")
def dashboard(runs_dir):
    srv = server.start_in_thread(runs_dir, refresh_interval=0.3)
    yield srv, "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver; chromedriver (and the browser it starts) run in
    their own process group (tests/proc.py), killed when the module is done."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("headless Chromium is required: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    tmp = tmp_path_factory.mktemp("chromium")
    options.add_argument("--user-data-dir=" + str(tmp / "profile"))
    port = _free_port()
    with proc.Background([CHROMEDRIVER, "--port=%d" % port], str(tmp / "chromedriver.log")) as bg:
        deadline = time.time() + 30
        while "started successfully" not in bg.output():
            assert bg.popen.poll() is None and time.time() < deadline, bg.output()
            time.sleep(0.1)
        driver = webdriver.Remote(command_executor="http://127.0.0.1:%d" % port, options=options)
        driver.set_page_load_timeout(30)
        os.makedirs(ARTIFACTS, exist_ok=True)
        try:
            yield driver
        finally:
            driver.quit()


def browser_log(driver):
    """The console messages since the last call (Remote WebDriver's getLog command)."""
    return driver.execute("getLog", {"type": "browser"})["value"]


def wait_for(driver, script, timeout=20, what="condition"):
    """Poll a JS expression until it returns something truthy; return that value."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s; last value %r; browser log: %s"
                         % (what, value, browser_log(driver)))


def screenshot(driver, name):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(800, height + 40), 6000))
    time.sleep(0.3)
    path = os.path.join(ARTIFACTS, name + ".png")
    driver.save_screenshot(path)
    driver.set_window_size(1400, 1000)
    return path


def no_js_errors(driver):
    errors = [e for e in browser_log(driver) if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not errors, errors


@pytest.mark.timeout(480)
def test_overview_lists_both_runs_with_states(dashboard, browser):
    _, url = dashboard
    browser.get(url + "/?refresh=500")
    states = wait_for(browser, """
        const rows = document.querySelectorAll('tr[data-run]');
        return rows.length >= 2
            ? Array.from(rows).map(r => [r.dataset.run, r.dataset.state, r.className, r.innerText]) : null;
    """, what="overview rows")
    # One snapshot taken in the page: live refresh replaces rows, so no element is held across calls.
    by_name = {name: (state, cls, text) for name, state, cls, text in states}
    assert by_name[REAL][0] == "finished"
    assert by_name[FAILED][0] == "failed" and "alert" in by_name[FAILED][1]
    assert "alert" not in by_name[REAL][1]
    assert "40 / 40" in by_name[REAL][2]
    screenshot(browser, "overview")
    no_js_errors(browser)


@pytest.mark.timeout(480)
def test_run_page_charts_have_points_and_straggler_is_named(dashboard, browser, runs_dir):
    _, url = dashboard
    browser.get(url + "/run/" + REAL + "?refresh=500")
    counts = wait_for(browser, """
        const c = window.hvdCharts || {};
        const ids = ['steps', 'examples', 'tokens', 'loss', 'lr', 'step_time', 'data_wait'];
        if (!ids.every(id => c[id])) return null;
        return Object.fromEntries(ids.map(id => [id, HVD.pointsIn(c[id])]));
    """, what="run page charts")
    windows = [r for r in rundir.read_jsonl(os.path.join(runs_dir, REAL, "metrics.jsonl"))[0]
               if "examples_per_sec" in r]
    assert len(windows) == 10
    assert counts["examples"] == counts["steps"] == counts["tokens"] == len(windows)
    assert all(n >= 1 for n in counts.values()), counts
    drawn = browser.execute_script("""
        return Object.values(window.hvdCharts).every(u => u.ctx.canvas.width > 100 && u.ctx.canvas.height > 50);
    """)
    assert drawn
    # Read in one script: live refresh may replace these elements between two driver calls.
    straggler_text, straggler_rank, plan_text = browser.execute_script("""
        const s = document.getElementById('straggler');
        return [s.innerText, s.dataset.rank, document.querySelector('.batchline').innerText];
    """)
    assert re.match(r"Slowest rank: [01]\b", straggler_text), straggler_text
    last_stats = [r["ranks"] for r in windows if "ranks" in r][-1]
    assert straggler_rank == str(last_stats["slowest_rank"])
    assert plan_text == "per-rank batch 8 \u00d7 accum 1 \u00d7 world 2 = global batch 16"
    screenshot(browser, "run-real")
    no_js_errors(browser)


@pytest.mark.timeout(480)
def test_live_refresh_picks_up_appended_rows(dashboard, browser, runs_dir):
    _, url = dashboard
    run = rundir.RunDir(os.path.join(runs_dir, FAILED))
    browser.get(url + "/run/" + FAILED + "?refresh=500")
    wait_for(browser, "return window.hvdCharts && window.hvdCharts.examples && HVD.pointsIn(window.hvdCharts.examples) === 12",
             what="12 points on the failed run's chart")
    browser.execute_script("window.__not_reloaded = true;")
    assert browser.execute_script("return document.getElementById('rows').textContent") == "12"
    t0 = rundir.read_jsonl(run.metrics)[0][0]["time"] - 20
    for step in (13, 14, 15):
        rundir.append_jsonl(run.metrics, synthetic.metrics_record(step, t0, 100, 2, interval=20))
    wait_for(browser, "return document.getElementById('rows').textContent === '15'", what="15 rows")
    points = wait_for(browser, "return HVD.pointsIn(window.hvdCharts.examples) === 15 && HVD.pointsIn(window.hvdCharts.examples)",
                      what="15 points")
    assert points == 15
    assert browser.execute_script("return window.__not_reloaded === true")
    assert browser.execute_script("return document.querySelector('.run-head .badge').innerText") == "failed"
    screenshot(browser, "run-failed")
    no_js_errors(browser)


@pytest.mark.timeout(480)
def test_compare_page_and_screenshot_for_docs(dashboard, browser):
    _, url = dashboard
    browser.get(url + "/compare?refresh=1000&runs=%s,%s" % (REAL, FAILED))
    n = wait_for(browser, "return window.hvdCharts && window.hvdCharts.compare && HVD.pointsIn(window.hvdCharts.compare)",
                 what="comparison chart")
    assert n >= 10
    rows = wait_for(browser, "const r = document.querySelectorAll('#scaling tr[data-run]'); return r.length ? r.length : null",
                    what="scaling rows")
    assert rows == 2
    screenshot(browser, "compare")
    # the picture for the README (monitoring/dashboard.png is a copy): the real run's page, first screen
    browser.set_window_size(1400, 1100)
    browser.get(url + "/run/%s?refresh=1000" % REAL)
    wait_for(browser, "return window.hvdCharts && window.hvdCharts.lr && HVD.pointsIn(window.hvdCharts.lr) > 0",
             what="run page")
    time.sleep(0.5)
    browser.save_screenshot(os.path.join(ARTIFACTS, "dashboard.png"))
    browser.set_window_size(1400, 1000)
    no_js_errors(browser)


@pytest.mark.timeout(480)
def test_metrics_endpoint_matches_real_run(dashboard, runs_dir):
    srv, _ = dashboard
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    records = rundir.read_jsonl(os.path.join(runs_dir, REAL, "metrics.jsonl"))[0]
    last = [r for r in records if "examples_per_sec" in r][-1]

    def value(name, **labels):
        return next(s.value for s in fams[name].samples if s.labels == dict(labels, run=REAL))

    assert value("hvd_pretrain_step") == 40
    assert value("hvd_pretrain_examples_per_sec") == pytest.approx(last["examples_per_sec"])
    assert value("hvd_pretrain_global_step_per_sec") == pytest.approx(last["global_step_per_sec"])
    assert value("hvd_pretrain_loss") == pytest.approx(last["loss"])
    assert value("hvd_pretrain_objective_loss", objective="mlm") == pytest.approx(last["losses"]["mlm"])
    assert value("hvd_pretrain_run_state", state="finished") == 1.0
    assert value("hvd_pretrain_step_time_seconds", stat="max") == pytest.approx(last["ranks"]["step_time"]["max"])


@pytest.mark.timeout(480)
def test_tensorboard_launch_serves_the_trainer_scalars(runs_dir, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [os.path.join(proc.BIN, "hvd-monitor"), "tensorboard", os.path.join(runs_dir, REAL), "--launch",
           "--port", str(port), "--host", "127.0.0.1"]
    with proc.Background(cmd, str(tmp_path / "tb.log")) as bg:
        deadline = time.time() + 120
        tags = None
        while time.time() < deadline and tags is None:
            assert bg.popen.poll() is None, bg.output()[-3000:]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/data/plugin/scalars/tags")
                res = conn.getresponse()
                body = res.read()
                if res.status == 200 and json.loads(body):
                    tags = json.loads(body)
            except (OSError, ValueError):
                time.sleep(1)
        assert tags, "TensorBoard did not answer within 120 s:\n" + bg.output()[-3000:]
    all_tags = {tag for run_tags in tags.values() for tag in run_tags}
    assert {"throughput/global_step_per_sec", "throughput/examples_per_sec", "loss/total"} <= all_tags


@pytest.mark.timeout(480)
def test_zoom_fetches_the_window_at_full_resolution(browser, tmp_path):
    root = str(tmp_path / "runs")
    synthetic.write_run(root, "long", steps=6000, t0=time.time() - 61000, interval=10)
    srv = server.start_in_thread(root, refresh_interval=5)
    try:
        browser.get("http://127.0.0.1:%d/run/long?refresh=600000" % srv.server_address[1])
        coarse = wait_for(browser, "return window.hvdCharts && window.hvdCharts.examples && window.hvdCharts.loss"
                                   " && HVD.pointsIn(window.hvdCharts.examples)", what="charts")
        assert coarse <= 1502  # 6000 rows downsampled
        # drag across the middle tenth of the loss chart with the mouse, as a user would
        from selenium.webdriver.common.action_chains import ActionChains
        over = browser.find_element("css selector", "#chart-loss .u-over")
        width = over.size["width"]
        ActionChains(browser).move_to_element_with_offset(over, int(-width * 0.05), 0).click_and_hold() \
            .move_by_offset(int(width * 0.1), 0).release().perform()
        window = wait_for(browser, """
            const s = window.hvdCharts.loss.scales.x, d = window.hvdCharts.loss.data[0];
            return s.max - s.min < (d[d.length - 1] - d[0]) / 2 ? [s.min, s.max] : null;
        """, what="zoomed scale")
        lo, hi = window
        fine = wait_for(browser, """
            const u = window.hvdCharts.examples;
            const xs = u.data[0];
            return xs.length && xs[0] >= %f - 10 && xs[xs.length - 1] <= %f + 10 ? HVD.pointsIn(u) : null;
        """ % (lo, hi), what="zoomed data")
        rows_in_window = int((hi - lo) // 10)
        assert abs(fine - rows_in_window) <= 2  # every row in the window, not a downsample
        synced = browser.execute_script("const s = window.hvdCharts.steps.scales.x; return [s.min, s.max];")
        assert synced == pytest.approx(window)
        screenshot(browser, "run-zoomed")
    finally:
        srv.shutdown()
        srv.server_close()
