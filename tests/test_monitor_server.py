"""The dashboard server: JSON API, static files, /metrics, refusal of path traversal, bad runs."""

import http.client
import json
import os
import re
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hvd_pretrain import rundir
from hvd_pretrain.telemetry import server, synthetic
from tests import proc
from tests.proc import BIN, Background, run


@pytest.fixture()
def served(tmp_path):
    root = str(tmp_path / "runs")
    now = time.time()
    synthetic.write_run(root, "np2", steps=60, slow_rank=1, t0=now - 600, job_state="running")
    synthetic.write_run(root, "failed", steps=10, total=100, t0=now - 3000, job_state="failed", restarts=1)
    broken = rundir.RunDir(os.path.join(root, "broken")).ensure()
    with open(broken.metrics, "w") as f:
        f.write('{"time": 1, "step": 1, "loss": 2.0}\n{"time": 2, "st\n')
    with open(broken.job, "w") as f:
        f.write('{"state": "runn')
    rundir.RunDir(os.path.join(root, "nometrics")).ensure()
    nan = synthetic.write_run(root, "nanplan", steps=3)
    with open(nan.plan, "w") as f:  # Python's json accepts NaN; a browser's JSON.parse does not
        f.write('{"world_size": NaN, "per_rank_batch": Infinity, "model": {"hidden_size": NaN}}\n')
    srv = server.start_in_thread(root, refresh_interval=0.2)
    try:
        yield srv, root
    finally:
        srv.shutdown()
        srv.server_close()


def _get(srv, path):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    conn.request("GET", path)  # sent as is: http.client does not normalise '..'
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, res.getheader("Content-Type") or "", body


def _json(srv, path):
    status, ctype, body = _get(srv, path)
    assert status == 200, (path, status, body[:300])
    assert ctype == "application/json"
    return json.loads(body)


@pytest.mark.timeout(60)
def test_overview_and_run_api(served):
    srv, _ = served
    runs = {r["name"]: r for r in _json(srv, "/api/runs")["runs"]}
    assert set(runs) == {"np2", "failed", "broken", "nometrics", "nanplan"}
    assert runs["np2"]["state"] == "running" and runs["np2"]["rows"] == 60
    assert runs["failed"]["state"] == "failed" and runs["failed"]["alert"]
    assert runs["broken"]["rows"] == 1
    assert any("unreadable" in p for p in runs["broken"]["problems"])
    assert runs["nometrics"]["state"] == "no metrics"
    detail = _json(srv, "/api/run/np2")
    assert detail["plan"]["per_rank_batch"] == 8 and detail["ranks"] == [0, 1]
    series = _json(srv, "/api/run/np2/series?points=20")
    assert series["rows"] == 60 and series["points"] <= 22
    assert len(series["x"]) == len(series["series"]["examples_per_sec"]) == series["points"]
    unchanged = _json(srv, "/api/run/np2/series?version=%d" % series["version"])
    assert unchanged == {"unchanged": True, "version": series["version"]}
    window = _json(srv, "/api/run/np2/series?t0=%f&t1=%f&keys=loss" % (series["x"][0], series["x"][0] + 95))
    assert list(window["series"]) == ["loss"] and 1 <= len(window["x"]) <= 10
    ranks = _json(srv, "/api/run/np2/ranks")
    assert ranks["slowest"]["rank"] == 1
    compare = _json(srv, "/api/compare?runs=np2,failed,ghost&metric=loss")
    assert set(compare["runs"]) == {"np2", "failed"} and compare["missing"] == ["ghost"]
    assert _json(srv, "/api/scaling")["rows"]
    system = _json(srv, "/api/system")
    assert system["host"]
    assert runs["nanplan"]["world_size"] == 2  # from metrics.jsonl, the plan's NaN ignored
    for name in ("broken", "nometrics", "nanplan"):
        _json(srv, "/api/run/%s" % name)
        _json(srv, "/api/run/%s/series" % name)
        _json(srv, "/api/run/%s/ranks" % name)


@pytest.mark.timeout(60)
def test_pages_and_assets(served):
    srv, _ = served
    for path in ("/", "/run/np2", "/compare?runs=np2"):
        status, ctype, body = _get(srv, path)
        assert status == 200 and ctype.startswith("text/html") and b"<script" in body
        for src in re.findall(rb'(?:src|href)="(/static/[^"]+)"', body):
            s, _, asset = _get(srv, src.decode())
            assert s == 200 and len(asset) > 100, src
        assert b"http://" not in body and b"https://" not in body  # nothing fetched from the network
    assert _get(srv, "/run/ghost")[0] == 404
    assert _get(srv, "/api/run/ghost")[0] == 404
    assert _get(srv, "/static/nothing.js")[0] == 404


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", [
    "/run/../../etc/passwd", "/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/run/%2e%2e/%2e%2e/etc/passwd", "/api/run/../../../etc/passwd/series", "/static/..\\..\\etc\\passwd",
    "/static/%00passwd", "/api/run/np2/../../../../etc/passwd",
])
def test_path_traversal_is_refused(served, path):
    srv, _ = served
    status, _, body = _get(srv, path)
    assert status in (400, 404)
    assert b"root:" not in body and b"/bin/" not in body


@pytest.mark.timeout(60)
def test_metrics_endpoint_over_http(served):
    srv, _ = served
    status, ctype, body = _get(srv, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    steps = {s.labels["run"]: s.value for s in fams["hvd_pretrain_step"].samples}
    assert steps == {"np2": 60.0, "failed": 10.0, "broken": 1.0, "nanplan": 3.0}


@pytest.mark.timeout(60)
def test_server_picks_up_new_runs_and_rows(served):
    srv, root = served
    run = rundir.RunDir(os.path.join(root, "np2"))
    rows = [synthetic.metrics_record(60 + i, time.time() - 600, 60, 2) for i in range(1, 6)]
    for rec in rows:
        rundir.append_jsonl(run.metrics, rec)
    synthetic.write_run(root, "late", steps=3)
    deadline = time.time() + 10
    while time.time() < deadline:
        runs = {r["name"]: r for r in _json(srv, "/api/runs")["runs"]}
        # A new run is listed first and its rows are read on a later refresh: wait for both.
        if runs.get("late", {}).get("rows") == 3 and runs["np2"]["rows"] == 65:
            break
        time.sleep(0.2)
    assert runs["np2"]["rows"] == 65 and runs["late"]["rows"] == 3


def _monitor(*args):
    return [os.path.join(BIN, "hvd-monitor")] + list(args)


def _wait_for_port(bg, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"http://[^:]+:(\d+)/", bg.output())
        if m:
            return int(m.group(1))
        assert bg.popen.poll() is None, bg.output()
        time.sleep(0.1)
    raise AssertionError("hvd-monitor serve did not start:\n" + bg.output())


@pytest.mark.timeout(60)
def test_serve_cli_loopback_default_and_warning_elsewhere(tmp_path):
    root = str(tmp_path / "runs")
    synthetic.write_run(root, "np2", steps=5)
    with Background(_monitor("serve", "--runs", root, "--port", "0"), str(tmp_path / "a.log")) as bg:
        port = _wait_for_port(bg)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/runs")
        assert json.loads(conn.getresponse().read())["runs"][0]["name"] == "np2"
        assert "127.0.0.1" in bg.output() and "WARNING" not in bg.output()
    with Background(_monitor("serve", "--runs", root, "--port", "0", "--host", "0.0.0.0"),
                    str(tmp_path / "b.log")) as bg:
        _wait_for_port(bg)
        assert "WARNING" in bg.output() and "no authentication" in bg.output()


@pytest.mark.timeout(60)
def test_serve_cli_bad_arguments(tmp_path):
    res = run(_monitor("serve", "--runs", str(tmp_path / "missing")), timeout=30, check=False)
    assert res.returncode == 2 and "is not a directory" in res.stdout
    assert len(res.stdout.strip().splitlines()) == 1
    res = run(_monitor("bogus"), timeout=30, check=False)
    assert res.returncode == 2


@pytest.mark.timeout(60)
def test_monitor_never_imports_tensorflow_or_horovod():
    code = ("import sys, time; t = time.time();"
            "import hvd_pretrain.cli.monitor, hvd_pretrain.telemetry.server, hvd_pretrain.telemetry.report,"
            " hvd_pretrain.telemetry.top, hvd_pretrain.telemetry.tensorboard;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'horovod', 'keras', 'tf_keras')];"
            "print(bad, round(time.time() - t, 3))")
    res = run([sys.executable, "-c", code], timeout=30, env=proc.test_env())
    bad, seconds = res.stdout.strip().rsplit(" ", 1)
    assert bad == "[]", res.stdout
    print("import time of the monitor: %s s" % seconds)
