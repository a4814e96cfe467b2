"""`hvd-monitor report RUN... -o report.html`: one self-contained HTML file.

The page embeds the charting library, the dashboard's own scripts and styles,
and each run's (downsampled) data, so it opens offline, from a ticket or an
e-mail attachment. Every chart has a "download PNG" link.
"""

import html
import json
import os
import time

from hvd_pretrain.telemetry import api, scaling
from hvd_pretrain.telemetry.server import STATIC_DIR

SCRIPTS = ("uPlot.iife.min.js", "common.js", "charts.js", "runview.js")
STYLES = ("uPlot.min.css", "app.css")
REPORT_POINTS = 2000

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{styles}
.report-run {{ border-top: 3px solid #20283a; margin-top: 26px; padding-top: 6px; }}
</style>
</head>
<body>
<header><h1>{title}</h1><span class="muted">made {stamp} by hvd-monitor report</span></header>
<main>
<div id="report-scaling"></div>
<div id="report-runs"></div>
</main>
<!-- uPlot {uplot_note}; MIT licence, see uPlot.LICENSE.txt in the hvd-pretrain package -->
{scripts}
<script type="application/json" id="report-data">{data}</script>
<script>
(function () {{
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const box = document.getElementById("report-runs");
  data.runs.forEach(function (r, i) {{
    const section = HVD.el("section", {{ class: "report-run", "data-run": r.detail.summary.name }});
    box.appendChild(section);
    const view = new HVD.RunView(section, r.detail.summary.name, {{ live: false, prefix: "r" + i + "-" }});
    view.update(r.detail, r.series, r.ranks, r.system);
  }});
  for (const [id, chart] of Object.entries(HVD.charts)) HVD.pngLink(chart, id + ".png");
  if (data.scaling.length > 1) {{
    const E = HVD.el;
    const head = E("tr", {{}}, ["group", "run", "world size", "examples/s", "ideal", "efficiency"].map(function (h) {{
      return E("th", {{ text: h }}); }}));
    const rows = data.scaling.map(function (r) {{
      return E("tr", {{}}, [E("td", {{ text: r.group }}), E("td", {{ text: r.run }}),
        E("td", {{ class: "num", text: String(r.world_size) }}), E("td", {{ class: "num", text: HVD.num(r.examples_per_sec, 4) }}),
        E("td", {{ class: "num", text: HVD.num(r.ideal_examples_per_sec, 4) }}),
        E("td", {{ class: "num", text: r.efficiency === null ? "-" : (100 * r.efficiency).toFixed(1) + "%" }})]);
    }});
    document.getElementById("report-scaling").append(E("h2", {{ text: "Weak-scaling efficiency" }}),
      E("table", {{ class: "scaling" }}, [head].concat(rows)));
  }}
}})();
</script>
</body>
</html>
"""


def _read_static(name):
    with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as f:
        return f.read()


def _inline_script(text):
    return "<script>\n%s\n</script>" % text.replace("</script", "<\\/script")


def build(runs, title=None, now=None):
    """The report HTML for a list of RunMonitor objects (already refreshed)."""
    now = time.time() if now is None else now
    entries = []
    for run in runs:
        entries.append({
            "detail": api.run_detail(run, now),
            "series": api.run_series(run, points=REPORT_POINTS),
            "ranks": api.ranks_view(run, points=REPORT_POINTS // 2, now=now),
            "system": None,
        })
    data = {"runs": entries, "scaling": scaling.scaling_rows(runs)}
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    first = _read_static("uPlot.iife.min.js").splitlines()[0]
    title = title or "hvd-pretrain report: " + ", ".join(run.name for run in runs)
    return TEMPLATE.format(
        title=html.escape(title),
        stamp=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now)),
        styles="\n".join(_read_static(name) for name in STYLES),
        uplot_note=html.escape(first.strip("/*! ").replace("--", "")),
        scripts="\n".join(_inline_script(_read_static(name)) for name in SCRIPTS),
        data=payload)


def write(runs, path, title=None):
    text = build(runs, title)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return len(text.encode("utf-8"))
