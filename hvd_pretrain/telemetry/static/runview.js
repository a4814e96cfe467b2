/* hvd-monitor run view: summary cards, metric charts, straggler view, plan, history.
 * Used live by the run page and once, with embedded data, by static reports. */
"use strict";

(function () {
  const METRIC_CHARTS = [
    { id: "steps", title: "Global steps / s", keys: ["global_step_per_sec"] },
    { id: "examples", title: "Examples / s", keys: ["examples_per_sec"] },
    { id: "tokens", title: "Tokens / s", keys: ["tokens_per_sec", "tokens_per_sec_nonpad"] },
    { id: "loss", title: "Loss per objective", keys: ["loss"], prefix: "losses." },
    { id: "lr", title: "Learning rate", keys: ["lr"] },
    { id: "loss_scale", title: "Loss scale", keys: ["loss_scale"] },
    { id: "mfu", title: "MFU", keys: ["mfu"] },
    { id: "corpus_mix", title: "Examples per corpus (weighted mix)", keys: [], prefix: "corpus_examples." },
    { id: "eval_loss", title: "Held-out loss (eval records)",
      keys: ["eval.loss", "eval.mlm_loss", "eval.nsp_loss", "eval.sop_loss", "eval.rtd_loss"] },
    { id: "eval_accuracy", title: "Held-out accuracy (eval records)",
      keys: ["eval.mlm_accuracy", "eval.nsp_accuracy", "eval.sop_accuracy", "eval.rtd_accuracy", "eval.rtd_precision",
             "eval.rtd_recall", "eval.rtd_all_original_baseline"] },
  ];
  const SPREAD = [{ label: "min", color: "#2ca02c" }, { label: "median", color: "#1f77b4" },
                  { label: "max", color: "#d62728" }];

  function RunView(root, name, opts) {
    this.root = root;
    this.name = name;
    this.opts = opts || {};
    this.events = [];
    this.prefix = this.opts.prefix || "";
    const E = HVD.el;
    const self = this;
    this.ids = function (id) { return self.prefix + id; };
    this.group = "time-" + this.prefix;
    this.zoomRange = null;   // [t0, t1] while the user has zoomed into the time axis
    this.onZoom = function (min, max, source) {
      self.zoomRange = min === null ? null : [min, max];
      HVD.zoomGroup(self.group, min, max, source);
      if (self.opts.onZoom) self.opts.onZoom(self.zoomRange);
    };
    this.head = E("section", { class: "run-head" });
    this.cards = E("section", { class: "cards" });
    this.problems = E("ul", { class: "problems" });
    this.metricBox = E("section", { class: "grid" });
    this.slots = {};
    for (const spec of METRIC_CHARTS) {
      this.slots[spec.id] = E("div", { class: "slot", hidden: true });
      this.metricBox.appendChild(this.slots[spec.id]);
    }
    this.probeHead = E("h2", { text: "Downstream probe (finetune/*.json)", hidden: true });
    this.probeNotes = E("ul", { class: "problems probe-notes" });
    this.probeBox = E("section", { class: "grid probes" });
    this.straggler = E("div", { class: "straggler", id: this.ids("straggler") });
    this.rankGrid = E("section", { class: "grid" });
    for (const id of ["step_time", "data_wait", "per_rank"]) {
      this.slots[id] = E("div", { class: "slot", hidden: true });
      this.rankGrid.appendChild(this.slots[id]);
    }
    this.rankTable = E("table", { class: "ranks" });
    this.systemNote = E("p", { class: "muted" });
    this.systemGrid = E("section", { class: "grid" });
    for (const id of ["sys_cpu", "sys_io", "sys_gpu"]) {
      this.slots[id] = E("div", { class: "slot", hidden: true });
      this.systemGrid.appendChild(this.slots[id]);
    }
    this.plan = E("div", { class: "plan" });
    this.history = E("div", { class: "history" });
    root.append(this.head, this.cards, this.problems,
      E("h2", { text: "Throughput and training" }), this.metricBox,
      this.probeHead, this.probeNotes, this.probeBox,
      E("h2", { text: "Stragglers: per-rank step time" }), this.straggler, this.rankGrid, this.rankTable,
      E("h2", { text: "Host" }), this.systemNote, this.systemGrid,
      E("h2", { text: "Batch / step plan" }), this.plan,
      E("h2", { text: "Restarts and events" }), this.history);
  }

  RunView.prototype.markers = function () {
    const self = this;
    return function () { return self.events; };
  };

  RunView.prototype.chart = function (slotId, spec, data) {
    const slot = this.slots[slotId];
    if (!data || !data[0] || data[0].length === 0) return null;
    slot.hidden = false;
    spec.id = this.ids(slotId);
    if (spec.sync) {
      spec.sync = this.group;
      spec.onZoom = this.onZoom;
    }
    return HVD.lineChart(slot, spec, data);
  };

  RunView.prototype.update = function (detail, series, ranks, system) {
    this.events = (detail.events || []).filter(function (e) { return e.time !== null && e.time !== undefined; });
    this.renderHead(detail.summary);
    this.renderCards(detail.summary, series);
    this.renderProblems(detail.summary.problems || []);
    if (series) this.renderMetrics(series);
    this.renderProbes(detail.probes);
    if (ranks) this.renderRanks(ranks);
    this.renderSystem(system);
    this.renderPlan(detail.plan || {}, detail.summary);
    this.renderHistory(detail.history || [], detail.events || []);
    for (const chart of Object.values(HVD.charts)) chart.redraw(false, false);
  };

  RunView.prototype.renderHead = function (s) {
    const E = HVD.el;
    const parts = [E("h2", { class: "run-name", text: s.name }), HVD.badge(s.state),
      E("span", { class: "muted reason", text: s.state_reason }), E("span", { class: "muted path", text: s.path })];
    if (this.opts.live) parts.push(E("a", { href: "/compare?runs=" + encodeURIComponent(s.name), text: "compare\u2026" }));
    this.head.replaceChildren.apply(this.head, parts);
    this.head.className = "run-head" + (s.alert ? " alert" : "");
    this.root.setAttribute("data-state", s.state);
  };

  RunView.prototype.renderCards = function (s, series) {
    const E = HVD.el;
    const card = function (label, value, cls) {
      return E("div", { class: "card " + (cls || "") }, [E("div", { class: "label", text: label }),
        E("div", { class: "value", text: value })]);
    };
    const progress = s.progress === null ? "-" : s.progress.toFixed(1) + "%";
    this.cards.replaceChildren(
      card("step", (s.step === null ? "-" : s.step) + (s.num_train_steps ? " / " + s.num_train_steps : "")),
      card("progress", progress),
      card("step/s", HVD.num(s.global_step_per_sec)),
      card("examples/s", HVD.num(s.examples_per_sec)),
      card("tokens/s", HVD.num(s.tokens_per_sec)),
      card("MFU", HVD.mfu(s.mfu)),
      card("loss", HVD.num(s.loss, 4)),
      card("ETA", s.eta_sec === null ? "-" : HVD.age(s.eta_sec)),
      card("heartbeat", HVD.age(s.heartbeat_age), s.alert ? "stale" : ""),
      card("checkpoint", HVD.age(s.checkpoint_age)),
      card("restarts", s.restarts === null ? "-" : String(s.restarts), s.restarts ? "warn" : ""),
      E("div", { class: "card" }, [E("div", { class: "label", text: "records" }),
        E("div", { class: "value", id: this.ids("rows"), "data-rows": String(s.rows), text: String(s.rows) })]));
    if (series) this.root.setAttribute("data-points", String(series.points));
  };

  RunView.prototype.renderProblems = function (problems) {
    this.problems.replaceChildren.apply(this.problems, problems.map(function (p) { return HVD.el("li", { text: p }); }));
  };

  RunView.prototype.renderMetrics = function (series) {
    const keys = Object.keys(series.series);
    for (const spec of METRIC_CHARTS) {
      let use = spec.keys.filter(function (k) { return keys.indexOf(k) >= 0; });
      if (spec.prefix) use = use.concat(keys.filter(function (k) { return k.indexOf(spec.prefix) === 0; }).sort());
      if (!use.length) continue;
      const data = [series.x].concat(use.map(function (k) { return series.series[k]; }));
      this.chart(spec.id, {
        title: spec.title, sync: "time", markers: this.markers(),
        series: use.map(function (k) { return { label: k }; }),
      }, data);
    }
  };

  /* One chart per finetune/<task>.json: accuracy and F1 (mean, error bars +- std over the seeds) against
   * the checkpoint's pre-training step; rows without a step (random init) as dashed horizontal lines. */
  RunView.prototype.renderProbes = function (probes) {
    const E = HVD.el;
    const tasks = (probes && probes.tasks) || [], notes = (probes && probes.notes) || [];
    this.probeHead.hidden = !(tasks.length || notes.length);
    this.probeNotes.replaceChildren.apply(this.probeNotes, notes.map(function (n) { return E("li", { class: "probe-note", text: n }); }));
    const seen = {};
    for (const t of tasks) {
      const slotId = "probe-" + t.id;
      seen[slotId] = true;
      let slot = this.slots[slotId];
      if (!slot) {
        slot = this.slots[slotId] = E("div", { class: "slot probe", "data-task": t.task, "data-file": t.file });
        slot._host = E("div");
        slot._caption = E("p", { class: "muted probe-caption" });
        slot.append(slot._host, slot._caption);
        this.probeBox.appendChild(slot);
      }
      slot.hidden = false;
      const protocol = [t.protocol, t.learning_rate === null ? null : "lr " + String(t.learning_rate),
        t.seeds ? t.seeds + " seed" + (t.seeds > 1 ? "s" : "") : null].filter(Boolean).join(", ");
      const title = "Downstream probe: " + t.task + (protocol ? " (" + protocol + ")" : "");
      const caption = t.file + (t.dev_examples !== null ? ", " + t.dev_examples + " dev examples" : "") +
        "; mean \u00b1 std over the seeds";
      const refs = t.references.map(function (r) {
        return r.random ? "random init" : r.source;
      });
      if (!t.points.length) {  // nothing against steps: the results as text
        slot._host.replaceChildren(E("p", { class: "probe-text", text: title + ": " + t.references.map(function (r, i) {
          return refs[i] + " accuracy " + HVD.num(r.accuracy.mean, 4) + " \u00b1 " + HVD.num(r.accuracy.std, 4) +
            (r.f1 ? ", " + t.f1_name + " " + HVD.num(r.f1.mean, 4) + " \u00b1 " + HVD.num(r.f1.std, 4) : "");
        }).join("; ") }));
        slot._caption.textContent = caption;
        continue;
      }
      const xs = t.points.map(function (p) { return p.step; });
      const hasF1 = t.points.some(function (p) { return p.f1; });
      const series = [], data = [xs], errors = {};
      const meanOf = function (key) { return t.points.map(function (p) { return p[key] ? p[key].mean : null; }); };
      const stdOf = function (key) { return t.points.map(function (p) { return p[key] ? p[key].std : null; }); };
      const withStd = function (stds) {
        return function (u, v, si, i) {
          if (v === null || v === undefined) return "-";
          const sd = i === null || i === undefined ? null : stds[i];
          return HVD.num(v, 4) + (sd === null || sd === undefined ? "" : " \u00b1 " + HVD.num(sd, 3));
        };
      };
      const metrics = [["accuracy", "accuracy", "#1f77b4"]].concat(hasF1 ? [["f1", t.f1_name, "#ff7f0e"]] : []);
      for (const [key, label, color] of metrics) {
        const stds = stdOf(key);
        series.push({ label: label, color: color, width: 2, points: true, value: withStd(stds) });
        data.push(meanOf(key));
        errors[data.length - 1] = stds;
      }
      t.references.forEach(function (r, i) {
        for (const [key, label, color] of metrics) {
          if (!r[key]) continue;
          series.push({ label: refs[i] + " " + label, color: r.random ? color : "#7f7f7f", width: 1, dash: [6, 4],
            value: withStd(xs.map(function () { return r[key].std; })) });
          data.push(xs.map(function () { return r[key].mean; }));
        }
      });
      slot._host.querySelectorAll("p.probe-text").forEach(function (n) { n.remove(); });
      const chartId = this.ids(slotId);
      const shape = JSON.stringify([title, series.map(function (x) { return x.label; })]);
      const old = HVD.charts[chartId];
      if (old && old._hvdShape !== shape) {  // other series or title (the file was rewritten): draw anew
        old.root.parentNode.remove();
        old.destroy();
        delete HVD.charts[chartId];
      }
      const chart = HVD.lineChart(slot._host, { id: chartId, title: title, time: false, xLabel: "pre-training step",
        series: series, errors: errors }, data);
      chart._hvdShape = shape;
      slot._caption.textContent = caption;
    }
    for (const id of Object.keys(this.slots)) {
      if (id.indexOf("probe-") === 0 && !seen[id]) this.slots[id].hidden = true;
    }
  };

  RunView.prototype.renderRanks = function (r) {
    const E = HVD.el;
    const slow = r.slowest;
    if (slow && slow.rank !== null && slow.rank !== undefined) {
      const parts = ["Slowest rank: ", E("strong", { class: "rank", text: String(slow.rank) })];
      if (slow.host) parts.push(" on " + slow.host);
      if (slow.step_time) parts.push(" \u2014 " + HVD.num(slow.step_time) + " s/step");
      if (slow.vs_median) parts.push(", " + slow.vs_median.toFixed(2) + "\u00d7 the median rank");
      parts.push(E("span", { class: "muted", text: " (from " + slow.source + ")" }));
      this.straggler.replaceChildren.apply(this.straggler, parts);
      this.straggler.setAttribute("data-rank", String(slow.rank));
    } else {
      this.straggler.textContent = "No per-rank timings yet (ranks/<r>.jsonl).";
      this.straggler.removeAttribute("data-rank");
    }
    const spread = function (obj) { return ["min", "median", "max"].map(function (k) { return obj[k] || []; }); };
    if (r.step_time && r.step_time.max) {
      this.chart("step_time", { title: "Step time across ranks (s)", sync: "time", markers: this.markers(),
        series: SPREAD }, [r.x].concat(spread(r.step_time)));
    }
    if (r.data_wait && r.data_wait.max) {
      this.chart("data_wait", { title: "Input (data) wait across ranks (s)", sync: "time", markers: this.markers(),
        series: SPREAD }, [r.x].concat(spread(r.data_wait)));
    }
    const rankIds = Object.keys(r.per_rank || {});
    if (rankIds.length && r.grid_x) {
      this.chart("per_rank", { title: "Step time per rank (s)", sync: "time", markers: this.markers(),
        series: rankIds.map(function (id) { return { label: "rank " + id }; }) },
        [r.grid_x].concat(rankIds.map(function (id) { return r.per_rank[id]; })));
    }
    const head = E("tr", {}, ["rank", "host", "records", "step time (recent mean)", "last step time",
      "data wait (recent mean)", "last seen"].map(function (h) { return E("th", { text: h }); }));
    const rows = (r.table || []).map(function (t) {
      const isSlow = slow && slow.rank === t.rank;
      return E("tr", { class: isSlow ? "slowest" : "", "data-rank": String(t.rank) }, [
        E("td", { text: String(t.rank) }), E("td", { text: t.host || "-" }), E("td", { class: "num", text: String(t.records) }),
        E("td", { class: "num", text: HVD.num(t.step_time, 4) }), E("td", { class: "num", text: HVD.num(t.last_step_time, 4) }),
        E("td", { class: "num", text: HVD.num(t.data_wait, 4) }), E("td", { class: "age", text: HVD.age(t.age) })]);
    });
    this.rankTable.replaceChildren.apply(this.rankTable, [head].concat(rows));
  };

  RunView.prototype.renderSystem = function (sys) {
    if (!sys) { this.systemNote.textContent = "Host metrics are not part of this view."; return; }
    this.systemNote.textContent = "Host " + sys.host + " (the machine running hvd-monitor)." +
      (sys.gpu_note ? " " + sys.gpu_note + "." : "");
    const s = sys.series || {};
    const pick = function (keys) { return keys.filter(function (k) { return s[k]; }); };
    const groups = [
      ["sys_cpu", "CPU and memory (%)", pick(["cpu_percent", "mem_percent"])],
      ["sys_io", "Disk and network (MB/s)", pick(["disk_read_mb_s", "disk_write_mb_s", "net_recv_mb_s", "net_sent_mb_s"])],
      ["sys_gpu", "GPU utilisation (%) and memory (GB)", Object.keys(s).filter(function (k) { return k.indexOf("gpu") === 0; }).sort()],
    ];
    for (const [id, title, keys] of groups) {
      if (!keys.length || sys.x.length < 2) continue;  // one sample draws no line
      this.chart(id, { title: title, series: keys.map(function (k) { return { label: k }; }) },
        [sys.x].concat(keys.map(function (k) { return s[k]; })));
    }
  };

  RunView.prototype.renderPlan = function (plan, s) {
    const E = HVD.el;
    const prb = plan.per_rank_batch, acc = plan.accum_steps || s.accum_steps, ws = plan.world_size || s.world_size;
    const gb = plan.global_batch || s.global_batch;
    const line = prb ? "per-rank batch " + prb + " \u00d7 accum " + (acc || 1) + " \u00d7 world " + (ws || "?") +
      " = global batch " + (gb || "?") : (gb ? "global batch " + gb : "no plan.json");
    const row = function ([k, v]) {
      const text = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
      return E("tr", {}, [E("th", { text: k }), E("td", { text: text })]);
    };
    const entries = Object.entries(plan);
    const main = entries.filter(function ([k]) { return k.indexOf(".") < 0; });
    const nested = entries.filter(function ([k]) { return k.indexOf(".") >= 0; });
    const open = this.plan.querySelector("details") && this.plan.querySelector("details").open;
    const more = nested.length ? E("details", { open: !!open }, [E("summary", { text: "all settings (" + nested.length + ")" }),
      E("table", { class: "kv" }, nested.map(row))]) : null;
    const parts = [E("p", { class: "batchline", text: line }), E("table", { class: "kv" }, main.map(row))];
    if (more) parts.push(more);
    this.plan.replaceChildren.apply(this.plan, parts);
  };

  RunView.prototype.renderHistory = function (history, events) {
    const E = HVD.el;
    const fmtTime = function (t) { return t ? new Date(t * 1000).toLocaleString() : "-"; };
    const parts = [];
    if (history.length) {
      const head = E("tr", {}, ["#", "pid", "start", "end", "exit code", "reason"].map(function (h) { return E("th", { text: h }); }));
      parts.push(E("table", { class: "history" }, [head].concat(history.map(function (h, i) {
        return E("tr", { class: h.exit_code ? "bad" : "" }, [E("td", { text: String(i) }), E("td", { text: String(h.pid || "-") }),
          E("td", { text: fmtTime(h.start) }), E("td", { text: fmtTime(h.end) }),
          E("td", { text: h.exit_code === null || h.exit_code === undefined ? "-" : String(h.exit_code) }),
          E("td", { text: h.reason || "" })]);
      }))));
    } else {
      parts.push(E("p", { class: "muted", text: "No supervisor history (job.json) for this run." }));
    }
    const shown = events.filter(function (e) { return e.kind !== "checkpoint"; }).slice(-30);
    if (shown.length) {
      parts.push(E("ul", { class: "events" }, shown.map(function (e) {
        return E("li", { class: "ev-" + e.kind, text: fmtTime(e.time) + (e.step !== null && e.step !== undefined ? " \u00b7 step " + e.step : "") + " \u00b7 " + e.label });
      })));
    }
    this.history.replaceChildren.apply(this.history, parts);
  };

  /* The metric keys the charts draw, out of all the keys a run has. */
  RunView.chartKeys = function (keys) {
    const out = [];
    for (const spec of METRIC_CHARTS) {
      for (const k of spec.keys) if (keys.indexOf(k) >= 0) out.push(k);
      if (spec.prefix) for (const k of keys) if (k.indexOf(spec.prefix) === 0) out.push(k);
    }
    return out;
  };

  HVD.RunView = RunView;
})();
