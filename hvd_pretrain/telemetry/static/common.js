/* hvd-monitor: helpers shared by every page and by static reports. */
"use strict";

const HVD = window.HVD || {};
window.HVD = HVD;

HVD.refreshMs = (function () {
  const q = new URLSearchParams(window.location.search).get("refresh");
  const ms = q ? parseInt(q, 10) : 3000;
  return isFinite(ms) && ms >= 250 ? ms : 3000;
})();

HVD.fetchJSON = async function (url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res.json();
};

HVD.num = function (v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  digits = digits || 3;
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toPrecision(digits) + "G";
  if (a >= 1e6) return (v / 1e6).toPrecision(digits) + "M";
  if (a >= 1e4) return (v / 1e3).toPrecision(digits) + "k";
  if (a !== 0 && a < 1e-3) return v.toExponential(2);
  return String(+v.toPrecision(digits));
};

HVD.age = function (s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 120) return s + "s";
  if (s < 7200) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d";
};

HVD.pct = function (v) {
  return v === null || v === undefined || !isFinite(v) ? "-" : v.toFixed(1) + "%";
};

/* MFU may be reported as a fraction (0.42) or a percentage (42). */
HVD.mfu = function (v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  return HVD.pct(v <= 1.5 ? v * 100 : v);
};

HVD.el = function (tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k === "href" || k === "title" || k === "id" || k === "type") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of [].concat(children || [])) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
};

HVD.badge = function (state) {
  const cls = "badge state-" + String(state || "unknown").replace(/\s+/g, "-");
  return HVD.el("span", { class: cls, text: state || "unknown" });
};

HVD.runUrl = function (name) { return "/run/" + encodeURIComponent(name); };
HVD.apiRunUrl = function (name, rest) {
  return "/api/run/" + encodeURIComponent(name) + (rest ? "/" + rest : "");
};

/* Call fn now and then every refreshMs; skips a tick while the previous one runs.
 * Returns a function that runs a tick at once. */
HVD.poll = function (fn) {
  let busy = false;
  const tick = async function () {
    if (busy) return;
    busy = true;
    try { await fn(); HVD.setStatus(""); }
    catch (e) { HVD.setStatus("refresh failed: " + e.message); }
    finally { busy = false; }
  };
  tick();
  setInterval(tick, HVD.refreshMs);
  return tick;
};

HVD.setStatus = function (text) {
  const node = document.getElementById("status");
  if (node) {
    node.textContent = text || "live \u00b7 every " + (HVD.refreshMs / 1000) + " s \u00b7 " + new Date().toLocaleTimeString();
    node.className = text ? "status error" : "status";
  }
};
