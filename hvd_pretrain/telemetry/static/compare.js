/* hvd-monitor comparison: one metric of several runs, and the scaling-efficiency table. */
"use strict";

(function () {
  const E = HVD.el;
  const params = new URLSearchParams(window.location.search);
  const names = (params.get("runs") || "").split(",").filter(Boolean);
  const METRICS = ["examples_per_sec", "global_step_per_sec", "tokens_per_sec", "loss", "lr", "mfu",
                   "loss_scale", "ranks.step_time.max", "ranks.data_wait.max", "eval.loss", "eval.mlm_accuracy",
                   "eval.mlm_perplexity", "eval.nsp_accuracy", "eval.sop_accuracy", "eval.rtd_accuracy"];
  const metricSel = document.getElementById("metric");
  const xSel = document.getElementById("xaxis");
  for (const m of METRICS) metricSel.appendChild(E("option", { value: m, text: m }));
  metricSel.value = params.get("metric") || "examples_per_sec";
  xSel.value = params.get("x") || "step";
  document.getElementById("runs-note").textContent = names.length ? names.join(", ") :
    "no runs selected: pick some on the overview page";

  function reset() {
    const old = HVD.charts.compare;
    if (old) { old.destroy(); delete HVD.charts.compare; }
    document.getElementById("compare-slot").replaceChildren();
    refresh();
  }
  metricSel.addEventListener("change", reset);
  xSel.addEventListener("change", reset);

  function renderRuns(data) {
    const head = E("tr", {}, ["run", "state", "world size", "accum", "global batch", "precision", "xla", "examples/s", "step/s", "loss"]
      .map(function (h) { return E("th", { text: h }); }));
    const rows = Object.entries(data.runs).map(function ([name, r]) {
      const s = r.summary;
      return E("tr", { "data-run": name }, [E("td", {}, [E("a", { href: HVD.runUrl(name), text: name })]),
        E("td", {}, [HVD.badge(s.state)]), E("td", { class: "num", text: String(s.world_size || "-") }),
        E("td", { class: "num", text: String(s.accum_steps || "-") }), E("td", { class: "num", text: String(s.global_batch || "-") }),
        E("td", { text: s.precision === null ? "-" : String(s.precision) }), E("td", { text: s.xla === null ? "-" : String(s.xla) }),
        E("td", { class: "num", text: HVD.num(s.examples_per_sec) }), E("td", { class: "num", text: HVD.num(s.global_step_per_sec) }),
        E("td", { class: "num", text: HVD.num(s.loss, 4) })]);
    });
    document.getElementById("compare-runs").replaceChildren.apply(document.getElementById("compare-runs"), [head].concat(rows));
  }

  function renderScaling(rows) {
    const table = document.getElementById("scaling");
    const head = E("tr", {}, ["group", "run", "world size N", "accum", "precision", "xla", "examples/s",
      "ideal (N/N\u2080 \u00d7 base)", "efficiency"].map(function (h) { return E("th", { text: h }); }));
    const body = rows.map(function (r) {
      const eff = r.efficiency === null ? "-" : (100 * r.efficiency).toFixed(1) + "%";
      return E("tr", { "data-run": r.run }, [E("td", { text: r.group }), E("td", { text: r.run }),
        E("td", { class: "num", text: String(r.world_size) }), E("td", { class: "num", text: String(r.accum_steps || "-") }),
        E("td", { text: r.precision === null || r.precision === undefined ? "-" : String(r.precision) }),
        E("td", { text: r.xla === null || r.xla === undefined ? "-" : String(r.xla) }),
        E("td", { class: "num", text: HVD.num(r.examples_per_sec, 4) }),
        E("td", { class: "num", text: HVD.num(r.ideal_examples_per_sec, 4) }),
        E("td", { class: "num" + (r.efficiency !== null && r.efficiency < 0.8 ? " eff-low" : ""), text: eff })]);
    });
    if (!rows.length) body.push(E("tr", {}, [E("td", { colSpan: 9, class: "muted", text: "no runs with examples_per_sec and a world size" })]));
    table.replaceChildren.apply(table, [head].concat(body));
  }

  async function refresh() {
    const q = "?runs=" + names.map(encodeURIComponent).join(",");
    const scaling = await HVD.fetchJSON("/api/scaling" + (names.length ? q : ""));
    renderScaling(scaling.rows);
    if (!names.length) return;
    const data = await HVD.fetchJSON("/api/compare" + q + "&metric=" + encodeURIComponent(metricSel.value) +
      "&x=" + encodeURIComponent(xSel.value));
    renderRuns(data);
    const runNames = Object.keys(data.runs);
    const tables = runNames.map(function (n) { return [data.runs[n].x, data.runs[n].y]; });
    const joined = tables.length ? uPlot.join(tables) : [[]];
    if (joined[0].length) {
      HVD.lineChart(document.getElementById("compare-slot"), {
        id: "compare", title: metricSel.value + " by " + xSel.value, time: false, xLabel: xSel.value,
        series: runNames.map(function (n) { return { label: n }; }),
      }, joined);
    }
  }

  HVD.poll(refresh);
})();
