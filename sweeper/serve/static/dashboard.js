// Shared helpers of the dashboard pages. Every text from the server goes into the DOM as textContent (never
// innerHTML), and into Plotly labels through esc(), so names and values are shown, never interpreted.
"use strict";

const POLL_MS = 2000;

async function api(path, options) {
  const response = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5 ? v.toPrecision(4).replace(/\.?0+$/, "") : v.toExponential(3);
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function showError(id, message) {
  const box = document.getElementById(id);
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// A table of rows; columns: [{key, label, format(value, row), link(row) -> href | null, badge, tooltip (the whole
// value on hover)}]; onSort(key) makes headers clickable.
function renderTable(container, columns, rows, opts) {
  opts = opts || {};
  const head = el("tr", {}, ...columns.map(c => {
    const mark = opts.sort === c.key ? (opts.desc ? " ▼" : " ▲") : "";
    const th = el("th", {text: (c.label || c.key) + mark, "data-key": c.key});
    if (opts.onSort) th.addEventListener("click", () => opts.onSort(c.key));
    return th;
  }));
  const body = rows.map(row => el("tr", {class: row.status ? `status-${row.status}` : ""}, ...columns.map(c => {
    const value = c.format ? c.format(row[c.key], row) : fmt(row[c.key]);
    const href = c.link ? c.link(row) : null;
    const content = href ? el("a", {href, text: value}) : c.badge ? el("span", {class: `badge ${value}`, text: value}) : value;
    const td = el("td", {class: typeof row[c.key] === "number" ? "num" : ""}, content);
    if (c.tooltip && row[c.key] !== null && row[c.key] !== undefined) td.title = String(row[c.key]);
    return td;
  })));
  container.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
}

function hexToRgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

// API traces → Plotly traces: a line per trace; with lo/hi a shaded band under it (mean ± sd over seeds).
function plotlyTraces(traces, opts) {
  opts = opts || {};
  const out = [];
  const seen = new Set();
  for (const t of traces) {
    const group = String(t.group !== undefined ? t.group : t.name);
    const legend = opts.legendByGroup ? !seen.has(group) : true;
    seen.add(group);
    if (t.lo && t.hi) {
      out.push({x: t.x, y: t.hi, mode: "lines", line: {width: 0}, hoverinfo: "skip", showlegend: false,
                legendgroup: group, connectgaps: false});
      out.push({x: t.x, y: t.lo, mode: "lines", line: {width: 0}, fill: "tonexty",
                fillcolor: hexToRgba(t.colour, 0.18), hoverinfo: "skip", showlegend: false, legendgroup: group});
    }
    out.push({x: t.x, y: t.y, mode: t.x.length > 1 ? "lines" : "markers", name: esc(opts.legendByGroup ? `${opts.groupLabel || ""}${group}` : t.name),
              line: {color: t.colour, width: t.lo ? 2 : 1.2}, marker: {color: t.colour}, legendgroup: group,
              showlegend: legend, text: esc(t.name), hovertemplate: "%{text}<br>x=%{x:.4g}<br>y=%{y:.4g}<extra></extra>"});
  }
  return out;
}

// Decades spanned by the positive y values of the traces (0 when fewer than two).
function decades(data) {
  let lo = Infinity, hi = -Infinity;
  for (const t of data) for (const y of t.y || []) if (y > 0) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  return hi > lo ? Math.log10(hi / lo) : 0;
}

function drawPlot(div, data, layout) {
  const base = {margin: {l: 60, r: 20, t: 30, b: 45}, height: 380, hovermode: "closest",
                legend: {font: {size: 10}}, paper_bgcolor: "white", plot_bgcolor: "white",
                xaxis: {gridcolor: "#eee", zeroline: false}, yaxis: {gridcolor: "#eee", zeroline: false}};
  const merged = Object.assign({}, base, layout || {});
  merged.xaxis = Object.assign({}, base.xaxis, (layout || {}).xaxis || {});
  if (merged.xaxis.type !== "log") merged.xaxis.tickformat = "~g";  // 9.6, not 9.5999999 on a narrow range
  merged.yaxis = Object.assign({}, base.yaxis, (layout || {}).yaxis || {});
  if (merged.yaxis.type === "log" && decades(data) >= 1) merged.yaxis.dtick = 1;  // 0.01, 0.1, 1: not "5", "2"
  if (merged.title && typeof merged.title === "string") {
    merged.title = {text: esc(merged.title), font: {size: 13}, x: 0.01, xanchor: "left"};  // clear of the mode bar
  }
  Plotly.react(div, data, merged, {displaylogo: false, responsive: true});
  const points = data.reduce((n, t) => n + (t.showlegend === false && t.hoverinfo === "skip" ? 0 : (t.x || []).length), 0);
  div.dataset.points = String(points);
  div.dataset.traces = String(data.length);
}

function formValues(form) {
  const out = {};
  for (const input of form.elements) {
    if (!input.name) continue;
    out[input.name] = input.type === "checkbox" ? (input.checked ? "1" : "0") : input.value;
  }
  return out;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  if (!live) return;
  live.textContent = text;
  live.className = ok ? "live" : "live stale";
}

// Calls fn now and every POLL_MS; failures show in the header, and polling goes on.
function poll(fn) {
  const tick = async () => {
    try { await fn(); setLive(true, `live · ${new Date().toLocaleTimeString()}`); }
    catch (e) { setLive(false, `not updating: ${e.message}`); }
    setTimeout(tick, POLL_MS);
  };
  tick();
}

function diagnosticPanel(container, id, title, data, layout) {
  let div = document.getElementById(id);
  if (!div) {
    div = el("div", {id, class: "plot"});
    container.append(div);
  }
  drawPlot(div, data, Object.assign({title, height: 320}, layout));
}

// The diagnostics panels (study and run pages): G/N with τ, noise scale with B*, λ_max, Lévy z. Panels of kinds
// the view no longer has (a filter left out the runs that have them) are removed, and so is the Lévy table.
function drawDiagnostics(view, axisType) {
  const box = document.getElementById("diagnostics");
  document.getElementById("diag-none").hidden = view.kinds.length > 0;
  const xaxis = {title: {text: esc(view.x)}, type: axisType};
  const drawn = new Set();
  const panel = (id, title, data, layout) => { drawn.add(id); diagnosticPanel(box, id, title, data, layout); };
  if (view.noise) {
    const n = view.noise;
    const tau = {type: "line", xref: "paper", x0: 0, x1: 1, y0: n.threshold, y1: n.threshold,
                 line: {color: "crimson", dash: "dash", width: 1}};
    panel("plot-gn", `G/N over training (dashed: τ = ${n.threshold})`, plotlyTraces(n.g_over_n),
          {xaxis, yaxis: {type: "log", title: {text: "G_t / N_t"}}, shapes: [tau], showlegend: false});
    const stars = n.predictions.filter(p => p.b_star !== null).map(p => ({type: "line", xref: "paper", x0: 0, x1: 1,
      y0: p.b_star, y1: p.b_star, line: {color: "black", dash: "dot", width: 1}}));
    const text = n.predictions.map(p => p.b_star === null ? `B0=${fmt(p.b0)}: no B*` : `B* = ${fmt(p.b_star)} (B0 = ${fmt(p.b0)})`).join("; ");
    panel("plot-bsimple", `noise scale B·N/G (dotted: predicted B*) ${text}`, plotlyTraces(n.b_simple),
          {xaxis, yaxis: {type: "log", title: {text: "B_simple"}}, shapes: stars, showlegend: false});
  }
  if (view.sharpness) {
    panel("plot-sharpness", "sharpness λ_max over training", plotlyTraces(view.sharpness.lambda_max),
          {xaxis, yaxis: {title: {text: "λ_max"}}, showlegend: false});
  }
  if (view.levy) {
    panel("plot-levy", "Lévy-area z over training", plotlyTraces(view.levy.levy_z),
          {xaxis, yaxis: {title: {text: "levy_z"}}, showlegend: false});
  }
  for (const div of [...box.children]) {
    if (!drawn.has(div.id)) { Plotly.purge(div); div.remove(); }
  }
  const table = document.getElementById("levy-table");
  if (table) {
    const rows = view.levy ? view.levy.table : [];
    if (rows.length) {
      const cols = Object.keys(rows[0]).map(key => ({key, link: key === "run_id" ? r => `/runs/${r.run_id}` : null}));
      renderTable(table, cols, rows);
      table.prepend(el("h3", {text: "Lévy-area statistics at each run's last measurement"}));
    } else {
      table.replaceChildren();
    }
  }
}

function drawSpectra(div, spectra) {
  const data = spectra.measurements.map(m => ({x: m.index, y: m.eigenvalues, mode: "lines+markers",
    name: esc(`step ${m.step}`), line: {color: m.colour, width: 1.2}, marker: {size: 4, color: m.colour}}));
  div.hidden = false;
  drawPlot(div, data, {title: `covariance spectrum per measurement (run ${spectra.run_id})`, height: 340,
                       xaxis: {title: {text: "eigenvalue index"}}, yaxis: {type: "log", title: {text: "eigenvalue of D"}}});
}
