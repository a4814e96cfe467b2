/* hvd-monitor overview: every run, refreshed in place. */
"use strict";

(function () {
  const selected = new Set(JSON.parse(sessionStorage.getItem("hvd-selected") || "[]"));
  const tbody = document.querySelector("#runs tbody");
  const compareBtn = document.getElementById("compare");

  function saveSelection() {
    sessionStorage.setItem("hvd-selected", JSON.stringify(Array.from(selected)));
    compareBtn.disabled = selected.size < 1;
    compareBtn.textContent = "Compare selected (" + selected.size + ")";
  }

  compareBtn.addEventListener("click", function () {
    const names = Array.from(selected).map(encodeURIComponent).join(",");
    window.location.href = "/compare?runs=" + names;
  });

  function progressCell(r) {
    const pct = r.progress === null ? null : Math.max(0, Math.min(100, r.progress));
    const bar = HVD.el("div", { class: "bar" }, [HVD.el("div", { class: "fill", style: "" })]);
    bar.firstChild.style.width = (pct || 0) + "%";
    const text = (r.step === null ? "-" : r.step) + (r.num_train_steps ? " / " + r.num_train_steps : "") +
      (pct === null ? "" : " (" + pct.toFixed(1) + "%)");
    return HVD.el("td", { class: "progress" }, [bar, HVD.el("span", { text: text })]);
  }

  function row(r, now) {
    const box = HVD.el("input", { type: "checkbox", title: "select for comparison" });
    box.checked = selected.has(r.name);
    box.addEventListener("change", function () {
      if (box.checked) selected.add(r.name); else selected.delete(r.name);
      saveSelection();
    });
    const notes = [];
    if (r.alert) notes.push(r.state_reason);
    if (r.loading) notes.push("reading backlog\u2026");
    notes.push.apply(notes, r.problems);
    const beatCls = r.alert && r.heartbeat_age !== null ? "age stale" : "age";
    const tr = HVD.el("tr", {
      class: "run " + (r.alert ? "alert " : "") + "row-" + r.state.replace(/\s+/g, "-"),
      "data-run": r.name, "data-state": r.state,
    }, [
      HVD.el("td", {}, [box]),
      HVD.el("td", { class: "name" }, [HVD.el("a", { href: HVD.runUrl(r.name), text: r.name }),
        r.job_name && r.job_name !== r.name ? HVD.el("div", { class: "muted", text: "job " + r.job_name }) : null]),
      HVD.el("td", { title: r.state_reason }, [HVD.badge(r.state)]),
      HVD.el("td", { class: "num", text: r.restarts === null ? "-" : String(r.restarts) }),
      progressCell(r),
      HVD.el("td", { class: "num", text: HVD.num(r.global_step_per_sec) }),
      HVD.el("td", { class: "num", text: HVD.num(r.examples_per_sec) }),
      HVD.el("td", { class: "num", text: HVD.num(r.tokens_per_sec) }),
      HVD.el("td", { class: "num", text: HVD.mfu(r.mfu) }),
      HVD.el("td", { class: "num", text: HVD.num(r.loss, 4) }),
      HVD.el("td", { class: "num", text: r.eta_sec === null ? "-" : HVD.age(r.eta_sec) }),
      HVD.el("td", { class: beatCls, text: HVD.age(r.heartbeat_age) }),
      HVD.el("td", { class: "age", text: HVD.age(r.checkpoint_age) }),
      HVD.el("td", { class: "num", text: r.world_size === null ? "-" : String(r.world_size) }),
      HVD.el("td", { class: "notes", text: notes.join("; ") }),
    ]);
    return tr;
  }

  async function refresh() {
    const data = await HVD.fetchJSON("/api/runs");
    document.getElementById("root").textContent = data.root || "";
    const frag = document.createDocumentFragment();
    for (const r of data.runs) frag.appendChild(row(r, data.now));
    tbody.replaceChildren(frag);
    const alerts = data.runs.filter(function (r) { return r.alert; }).length;
    document.getElementById("counts").textContent = data.runs.length + " run(s)" +
      (alerts ? ", " + alerts + " need attention" : "");
    document.getElementById("empty").hidden = data.runs.length > 0;
    for (const name of Array.from(selected)) {
      if (!data.runs.some(function (r) { return r.name === name; })) selected.delete(name);
    }
    saveSelection();
    document.body.setAttribute("data-refreshes", String(+(document.body.getAttribute("data-refreshes") || 0) + 1));
  }

  saveSelection();
  HVD.poll(refresh);
})();
