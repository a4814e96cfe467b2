"""Page load time of the hvd-monitor dashboard with many runs and many metric rows.

Two sets of run directories are written first (synthetic trainer and supervisor output):
  A. --runs runs whose metrics.jsonl files hold --rows rows in total (100 x 10k by default),
  B. one run holding --rows rows on its own (1M by default);
each run also has ranks/0.jsonl and ranks/1.jsonl with as many rows again.

For each it measures: the cold read of everything at start-up, the JSON API
(warm), an incremental refresh after appending one row per run, and, with
headless Chromium, the time from navigation to a rendered page (overview table
with every run; run page with its charts drawn). Prints a table and replaces
the "hvd-monitor page load" section of BENCHMARKS.md.

    .venv/bin/python benchmarks/monitor_load.py [--runs 100] [--rows 1000000] [--no-browser] [--data DIR]
"""

import argparse
import http.client
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hvd_pretrain import rundir  # noqa: E402
from hvd_pretrain.telemetry import server, synthetic  # noqa: E402

SECTION = "## hvd-monitor page load"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


def generate(root, runs, rows_per_run):
    start = time.time() - rows_per_run * 10.0 - 60
    for i in range(runs):
        synthetic.write_run(root, "run-%03d" % i, steps=rows_per_run, total=rows_per_run * 2, world=2,
                            t0=start + i, interval=10.0, slow_rank=i % 2, rank_stats_every=10,
                            job_state="running" if i % 10 else "failed", restarts=i % 3)


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.perf_counter()
    conn.request("GET", path)
    res = conn.getresponse()
    body = res.read()
    elapsed = time.perf_counter() - t
    conn.close()
    if res.status != 200:
        raise RuntimeError("%s -> %d" % (path, res.status))
    return elapsed, len(body)


def median_get(port, path, repeat=5):
    times, size = [], 0
    for _ in range(repeat):
        t, size = http_get(port, path)
        times.append(t)
    return statistics.median(times), size


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="hvd-monitor-chromium-")
    options.add_argument("--user-data-dir=" + profile)
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.profile_dir = profile
    return drv


def page_load(drv, url, ready_js, repeat=3, timeout=120):
    """Median ms from navigation start until `ready_js` is true in the page."""
    results = []
    for _ in range(repeat):
        drv.get("about:blank")
        drv.get(url)
        deadline = time.time() + timeout
        while time.time() < deadline:
            ms = drv.execute_script("return (%s) ? performance.now() : null" % ready_js)
            if ms:
                results.append(ms)
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("page %s not ready in %ss" % (url, timeout))
    return statistics.median(results)


PAGE_KEYS = ("global_step_per_sec,examples_per_sec,tokens_per_sec,loss,losses.mlm,losses.nsp,lr,loss_scale,mfu")


def append_row(store):
    """One new logging window in every run (so cached views are stale), read in."""
    for run in store.runs():
        rundir.append_jsonl(run.dir.metrics, synthetic.metrics_record(10 ** 7, time.time(), 10 ** 7, 2))
    t = time.perf_counter()
    store.refresh(force=True)
    return time.perf_counter() - t


def measure(label, root, n_runs, drv, rows):
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t = time.perf_counter()
    srv = server.start_in_thread(root, refresh_interval=3600)  # refreshes are driven below
    cold = time.perf_counter() - t
    rss = (proc.memory_info().rss - rss0) / 1e6
    port = srv.server_address[1]
    store = srv.store
    name = sorted(store.names())[n_runs // 2]
    ms = lambda sec: "%.0f ms" % (sec * 1e3)  # noqa: E731
    out = [(label, "cold start: read all runs (%d rows of metrics + 2x ranks)" % rows, "%.1f s" % cold),
           (label, "memory held after the cold read", "%.0f MB" % rss)]
    series = "/api/run/%s/series?keys=%s" % (name, PAGE_KEYS)
    for path, what in (("/api/runs", "GET /api/runs"), ("/api/run/%s" % name, "GET /api/run/<run>"),
                       (series, "GET /api/run/<run>/series (the charts' keys)"),
                       ("/api/run/%s/ranks" % name, "GET /api/run/<run>/ranks"), ("/metrics", "GET /metrics")):
        first, size = http_get(port, path)
        again, _ = median_get(port, path)
        out.append((label, what, "%s first, %s again, %.0f kB" % (ms(first), ms(again), size / 1e3)))
    t = time.perf_counter()
    store.refresh(force=True)
    out.append((label, "refresh, nothing new", ms(time.perf_counter() - t)))
    out.append((label, "refresh after 1 new row in each of %d run(s)" % n_runs, ms(append_row(store))))
    if drv is not None:
        base = "http://127.0.0.1:%d" % port
        ms_page = page_load(drv, base + "/?refresh=600000",
                            "document.querySelectorAll('tr[data-run]').length === %d" % n_runs)
        out.append((label, "browser: overview rendered (%d runs), median of 3" % n_runs, "%.0f ms" % ms_page))
        ready = ("window.hvdCharts && window.hvdCharts.examples && window.hvdCharts.step_time && "
                 "HVD.pointsIn(window.hvdCharts.examples) > 0")
        url = base + "/run/%s?refresh=600000" % name
        append_row(store)  # nothing cached for the first load
        first = page_load(drv, url, ready, repeat=1)
        again = page_load(drv, url, ready)
        out.append((label, "browser: run page with charts drawn", "%.0f ms first, %.0f ms again" % (first, again)))
    srv.shutdown()
    srv.server_close()
    return out


def write_section(table, header):
    path = os.path.join(REPO, "BENCHMARKS.md")
    lines = [SECTION, "", header, "", "| scenario | measurement | result |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % row for row in table]
    text = "\n".join(lines) + "\n"
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if SECTION in old:
        before, rest = old.split(SECTION, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1:] if nxt >= 0 else ""
        new = before + text + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--rows", type=int, default=1_000_000, help="metric rows in total (A) and in the big run (B)")
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument("--data", default=None, help="keep the synthetic runs here and reuse them next time")
    args = p.parse_args()
    work = args.data or tempfile.mkdtemp(prefix="hvd-monitor-bench-")
    drv = None if args.no_browser else browser()
    table = []
    try:
        many, one = os.path.join(work, "many"), os.path.join(work, "one")
        stamp = os.path.join(work, "written-%d-%d" % (args.runs, args.rows))
        if not os.path.exists(stamp):
            shutil.rmtree(many, ignore_errors=True)
            shutil.rmtree(one, ignore_errors=True)
            t = time.time()
            generate(many, args.runs, args.rows // args.runs)
            generate(one, 1, args.rows)
            open(stamp, "w").close()
            print("wrote %d + 1 runs in %.0f s (%s)" % (args.runs, time.time() - t, work), flush=True)
        else:
            print("reusing the runs in %s" % work, flush=True)
        table += measure("A: %d runs x %d rows" % (args.runs, args.rows // args.runs), many, args.runs, drv, args.rows)
        table += measure("B: 1 run x %d rows" % args.rows, one, 1, drv, args.rows)
    finally:
        if drv is not None:
            drv.quit()
            shutil.rmtree(drv.profile_dir, ignore_errors=True)
        if not args.data:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in table), max(len(r[1]) for r in table)
    for row in table:
        print("%-*s  %-*s  %s" % (width[0], row[0], width[1], row[1], row[2]))
    header = ("`%s` on %s, Python %s, %d CPU(s), load average %.1f at the end; browser: %s. "
              "Page times run from navigation start to the rendered page (median of 3)."
              % (" ".join(["benchmarks/monitor_load.py"] + sys.argv[1:]), platform.machine(),
                 platform.python_version(), os.cpu_count(), os.getloadavg()[0],
                 "headless Chromium" if drv is not None else "none (--no-browser or Chromium missing)"))
    if not args.no_write:
        write_section(table, header)
        print("updated BENCHMARKS.md (%s)" % SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
