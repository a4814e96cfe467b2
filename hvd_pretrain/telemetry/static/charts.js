/* hvd-monitor: uPlot charts with event markers (restarts, resumes, phase changes). */
"use strict";

window.HVD = window.HVD || {};
HVD.charts = {};            // id -> uPlot instance (tests read data lengths from here)
window.hvdCharts = HVD.charts;

HVD.palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#ad494a"];

HVD.markerStyle = {
  restart: { color: "#d62728", dash: [], label: true },
  exit: { color: "#8b0000", dash: [4, 3], label: true },
  resume: { color: "#ff7f0e", dash: [], label: true },
  start: { color: "#2ca02c", dash: [2, 3], label: true },
  end: { color: "#2ca02c", dash: [2, 3], label: true },
  phase: { color: "#9467bd", dash: [], label: true },
  checkpoint: { color: "rgba(120,120,120,0.45)", dash: [1, 3], label: false },
};

/* Draws vertical lines at marker x positions; `getMarkers()` returns [{time, kind, label}]. */
HVD.markersPlugin = function (getMarkers) {
  return {
    hooks: {
      draw: [function (u) {
        const markers = getMarkers() || [];
        if (!markers.length) return;
        const ctx = u.ctx;
        const top = u.bbox.top, height = u.bbox.height;
        const xmin = u.scales.x.min, xmax = u.scales.x.max;
        ctx.save();
        ctx.font = Math.round(10 * devicePixelRatio) + "px sans-serif";
        const rowEnds = [-1e9, -1e9, -1e9];   // labels of close markers go on the next row
        const gap = 4 * devicePixelRatio;
        for (const m of markers) {
          if (m.time === null || m.time === undefined || m.time < xmin || m.time > xmax) continue;
          const st = HVD.markerStyle[m.kind] || HVD.markerStyle.phase;
          const x = Math.round(u.valToPos(m.time, "x", true));
          ctx.strokeStyle = st.color;
          ctx.lineWidth = devicePixelRatio;
          ctx.setLineDash(st.dash.map(function (d) { return d * devicePixelRatio; }));
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          if (!st.label) continue;
          const text = m.label || m.kind;
          const width = ctx.measureText(text).width;
          const row = rowEnds.findIndex(function (end) { return x > end + gap; });
          if (row < 0) continue;
          ctx.fillStyle = st.color;
          ctx.fillText(text, x + 3 * devicePixelRatio, top + (12 + 12 * row) * devicePixelRatio);
          rowEnds[row] = x + 3 * devicePixelRatio + width;
        }
        ctx.restore();
      }],
    },
  };
};

/*
 * Create (or update) a line chart in `container`.
 * spec: {id, title, time: bool, series: [{label, color, width, dash}], markers: fn, yLabel}
 * data: [xs, ys1, ys2, ...] (uPlot's aligned columns).
 */
HVD.lineChart = function (container, spec, data) {
  const existing = HVD.charts[spec.id];
  if (existing) {
    if (spec.errors && existing._hvdErrors) existing._hvdErrors.bars = spec.errors;
    if (existing._hvdZoomed) {
      const x = existing.scales.x;
      existing.setData(data, false);
      existing.setScale("x", { min: x.min, max: x.max });  // recompute the visible index range
    } else {
      existing.setData(data, true);
    }
    return existing;
  }
  const box = HVD.el("div", { class: "chart", id: "chart-" + spec.id, "data-chart": spec.id });
  const errors = spec.errors ? { bars: spec.errors } : null;  // read by the plugin and the y range at each draw
  container.appendChild(box);
  const width = Math.max(300, (box.clientWidth || container.clientWidth || 600) - 10);
  const opts = {
    title: spec.title,
    width: width,
    height: spec.height || 220,
    scales: spec.errors ? { x: { time: spec.time !== false }, y: { range: HVD.errorRange(errors) } }
                        : { x: { time: spec.time !== false } },
    legend: { live: true },
    cursor: spec.sync ? { drag: { x: true, y: false }, sync: { key: spec.sync } } : { drag: { x: true, y: false } },
    series: [{ label: spec.time !== false ? "time" : (spec.xLabel || "x") }].concat(spec.series.map(function (s, i) {
      return {
        label: s.label,
        stroke: s.color || HVD.palette[i % HVD.palette.length],
        width: s.width || 1.5,
        dash: s.dash,
        spanGaps: true,
        points: { show: !!s.points },
        value: s.value || function (u, v) { return v === null || v === undefined ? "-" : HVD.num(v, 4); },
      };
    })),
    axes: [{ label: spec.time === false ? spec.xLabel : undefined },
           { label: spec.yLabel, size: 60, values: function (u, vals) { return vals.map(function (v) { return HVD.num(v); }); } }],
    plugins: (spec.markers ? [HVD.markersPlugin(spec.markers)] : []).concat(errors ? [HVD.errorBarsPlugin(errors)] : []),
    hooks: {
      setSelect: [function (u) {
        if (u.select.width <= 0) return;
        u._hvdZoomed = true;
        if (spec.onZoom) {
          spec.onZoom(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"), u);
        }
      }],
    },
  };
  const chart = new uPlot(opts, data, box);
  chart._hvdErrors = errors;
  chart._hvdGroup = spec.sync || null;
  chart.over.addEventListener("dblclick", function () {
    chart._hvdZoomed = false;
    if (spec.onZoom) spec.onZoom(null, null, chart);
  });
  HVD.charts[spec.id] = chart;
  return chart;
};

/* Error bars (mean +- std) on the series of `holder.bars`: {seriesIndex: [std per x, or null]}. */
HVD.errorBarsPlugin = function (holder) {
  return {
    hooks: {
      draw: [function (u) {
        const errors = holder.bars || {};
        const ctx = u.ctx;
        const cap = 4 * devicePixelRatio;
        ctx.save();
        ctx.lineWidth = devicePixelRatio;
        ctx.setLineDash([]);
        for (const [idx, stds] of Object.entries(errors)) {
          const s = Number(idx), ys = u.data[s];
          if (!ys || !u.series[s] || !u.series[s].show) continue;
          ctx.strokeStyle = u.series[s]._stroke || u.series[s].stroke;
          if (typeof ctx.strokeStyle !== "string") ctx.strokeStyle = "#555";
          for (let i = 0; i < ys.length; i++) {
            const sd = stds[i];
            if (ys[i] === null || ys[i] === undefined || sd === null || sd === undefined) continue;
            const x = Math.round(u.valToPos(u.data[0][i], "x", true));
            const lo = u.valToPos(ys[i] - sd, "y", true), hi = u.valToPos(ys[i] + sd, "y", true);
            ctx.beginPath();
            ctx.moveTo(x, lo); ctx.lineTo(x, hi);
            ctx.moveTo(x - cap, lo); ctx.lineTo(x + cap, lo);
            ctx.moveTo(x - cap, hi); ctx.lineTo(x + cap, hi);
            ctx.stroke();
          }
        }
        ctx.restore();
      }],
    },
  };
};

/* The y range of a chart with error bars: every mean +- std in view, padded by 5%. */
HVD.errorRange = function (holder) {
  return function (u, min, max) {
    const errors = holder.bars || {};
    for (const [idx, stds] of Object.entries(errors)) {
      const ys = u.data[Number(idx)] || [];
      for (let i = 0; i < ys.length; i++) {
        if (ys[i] === null || ys[i] === undefined) continue;
        const sd = stds[i] || 0;
        min = min === null ? ys[i] - sd : Math.min(min, ys[i] - sd);
        max = max === null ? ys[i] + sd : Math.max(max, ys[i] + sd);
      }
    }
    if (min === null || max === null) return [0, 1];
    const pad = Math.max((max - min) * 0.05, 0.005);
    return [min - pad, max + pad];
  };
};

/* Zoom every chart of a sync group to [min, max] of x, or back to all data (min === null). */
HVD.zoomGroup = function (group, min, max, source) {
  for (const chart of Object.values(HVD.charts)) {
    if (chart._hvdGroup !== group || chart === source) continue;
    if (min === null) {
      chart._hvdZoomed = false;
      chart.setData(chart.data, true);
    } else {
      chart._hvdZoomed = true;
      chart.setScale("x", { min: min, max: max });
    }
  }
};

/* Resize every chart to its container's width. */
window.addEventListener("resize", function () {
  for (const chart of Object.values(HVD.charts)) {
    const parent = chart.root.parentNode;
    if (parent) chart.setSize({ width: Math.max(300, parent.clientWidth - 10), height: chart.height });
  }
});

/* Number of x values with at least one non-null y, for status lines and tests. */
HVD.pointsIn = function (chart) {
  const d = chart.data;
  let n = 0;
  for (let i = 0; i < d[0].length; i++) {
    for (let s = 1; s < d.length; s++) {
      if (d[s][i] !== null && d[s][i] !== undefined) { n++; break; }
    }
  }
  return n;
};

/* Add a "PNG" download link under a chart (used in reports). */
HVD.pngLink = function (chart, filename) {
  const a = HVD.el("a", { class: "png", href: "#", text: "download PNG" });
  a.addEventListener("click", function (ev) {
    ev.preventDefault();
    const link = document.createElement("a");
    link.download = filename;
    link.href = chart.ctx.canvas.toDataURL("image/png");
    link.click();
  });
  chart.root.parentNode.appendChild(a);
};
