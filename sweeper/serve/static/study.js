// A study page: summary polled every POLL_MS; runs, plots, diagnostics and verdicts reloaded when its version
// (the server's stamp of the study: any run, point, diagnostic or verdict written) changes or a control changes.
"use strict";

const STUDY = document.body.dataset.study;
const BASE = `/api/studies/${encodeURIComponent(STUDY)}`;
const state = {where: "", sort: "", desc: false, version: null, pointsSeen: []};
const HIDDEN = new Set(["study_id", "trial_index", "host", "node_id", "device", "started_at", "config"]);
const HPARAMS = ["optimizer", "model", "dataset", "batch_size", "lr", "weight_decay", "svag_l", "momentum", "beta1",
                 "beta2", "eps", "scaling_rule", "kappa"];
// Final values of the time axes and schedules: they repeat the last step and the hyperparameters.
const FINAL_CLOCKS = ["final_effective_step", "final_epoch", "final_sde_time", "final_lr", "final_weight_decay"];
const IF_VARYING = new Set([...HPARAMS, "attempts", ...FINAL_CLOCKS]);  // shown only where they tell runs apart
const ERROR_CHARS = 80;

// Runs table columns: identity and the hyperparameters that vary, then final metrics, then progress, the error last.
function runColumns(data) {
  const group = c => c === "error" ? 4 : FINAL_CLOCKS.includes(c) ? 2 : c.startsWith("final_") ? 1
    : ["run_id", "trial_id", "status", "seed", ...HPARAMS].includes(c) ? 0 : 3;
  const shown = data.columns.filter(c => !HIDDEN.has(c) && data.rows.some(r => r[c] !== null)
    && (!IF_VARYING.has(c) || data.rows.length < 2 || new Set(data.rows.map(r => r[c])).size > 1));
  shown.sort((a, b) => group(a) - group(b));  // stable: the server's order within a group
  return shown.map(key => ({key, link: key === "run_id" ? r => `/runs/${r.run_id}` : null, badge: key === "status",
    tooltip: key === "error",
    format: key === "error" ? v => { const line = (v || "").split("\n")[0];
                                     return line.length > ERROR_CHARS ? `${line.slice(0, ERROR_CHARS)}…` : line; }
      : undefined}));
}

function plotParams() {
  const v = formValues(document.getElementById("plot-controls"));
  const div = document.getElementById("plot-trajectories");
  return {metric: v.metric, x: v.x, colour: v.colour, seeds: v.seeds, logx: v.logx, logy: v.logy,
          width: Math.max(100, Math.min(4000, Math.round(div.clientWidth || 800))), where: state.where};
}

async function refreshSummary() {
  const s = await api(BASE);
  const status = document.getElementById("status");
  status.textContent = s.status;
  status.className = `badge ${s.status}`;
  document.getElementById("n-points").textContent = String(s.n_points);
  state.pointsSeen.push(s.n_points);
  document.body.dataset.pointsSeen = state.pointsSeen.slice(-50).join(",");
  document.getElementById("counts").textContent = ["completed", "running", "pending", "failed", "diverged"]
    .filter(k => s[`n_${k}`]).map(k => `${s[`n_${k}`]} ${k}`).join(" · ") || "no runs";
  document.getElementById("progress-bar").style.width = `${Math.round(100 * s.progress)}%`;
  document.getElementById("progress-text").textContent = `${Math.round(100 * s.progress)}% of ${s.n_runs} runs finished`;
  document.getElementById("last-write").textContent = s.last_write ? new Date(s.last_write).toLocaleString() : "–";
  if (s.version !== state.version) {
    await refreshAll();  // on failure the version stays old: the next poll tries again
    state.version = s.version;
  }
}

async function refreshRuns() {
  const q = query({where: state.where, sort: state.sort, desc: state.desc ? "1" : ""});
  try {
    const data = await api(`${BASE}/runs?${q}`);
    showError("where-error", "");
    const columns = runColumns(data);
    document.getElementById("run-count").textContent = `${data.count} runs`;
    renderTable(document.getElementById("runs"), columns, data.rows, {sort: state.sort, desc: state.desc,
      onSort: key => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; refreshRuns(); }});
  } catch (e) {
    showError("where-error", e.message);
  }
}

async function refreshTrajectories() {
  const p = plotParams();
  const div = document.getElementById("plot-trajectories");
  const data = await api(`${BASE}/trajectories?${query(p)}`);
  const colourBy = data.colour;
  drawPlot(div, plotlyTraces(data.traces, {legendByGroup: true, groupLabel: `${colourBy} = `}), {
    title: `${data.metric} against ${data.x}`, height: 440,
    xaxis: {title: {text: data.x}, type: p.logx === "1" ? "log" : "linear"},
    yaxis: {title: {text: data.metric}, type: p.logy === "1" ? "log" : "linear"}});
  document.body.dataset.plotPoints = String(data.points_drawn);
  document.getElementById("plot-note").textContent =
    `${data.n_runs} runs as ${data.traces.length} ${data.seeds === "band" ? "settings (mean ± sd over seeds)" : "lines"}; ` +
    `${data.points_drawn} points drawn: each run downsampled to ${data.buckets} slices of the x axis, ` +
    `${data.seeds === "band" ? "the mean of each" : "the min and max of each (spikes kept)"}.`;
}

async function refreshScaling() {
  const p = plotParams();
  const select = document.getElementById("scaling-path");
  const data = await api(`${BASE}/scaling?${query({metric: p.metric, width: p.width, path: select.value || "0"})}`);
  const div = document.getElementById("scaling");
  document.getElementById("scaling-choice").hidden = data.paths.length < 2;
  if (!data.path) {
    Plotly.purge(div);
    div.replaceChildren(el("p", {class: "hint", text: "No run is on a scaling path (add a [scaling] section)."}));
    return;
  }
  const chosen = String(data.path.index);
  select.replaceChildren(...data.paths.map(x => el("option", {value: String(x.index),
    text: `${x.rule}: ${x.label} (${x.n_runs} runs)`})));
  select.value = chosen;
  const path = data.path;
  const traces = [];
  if (path.band) {
    traces.push({x: path.band.x, y: path.band.hi, mode: "lines", line: {width: 0}, showlegend: false, hoverinfo: "skip"});
    traces.push({x: path.band.x, y: path.band.lo, mode: "lines", line: {width: 0}, fill: "tonexty",
                 fillcolor: "rgba(120,120,120,0.22)", name: esc(`±${Math.round(100 * data.relative)}% of κ = ${path.baseline_kappa}`)});
  }
  traces.push(...plotlyTraces(path.traces.map(t => Object.assign({}, t, {lo: null, hi: null}))));
  drawPlot(div, traces, {title: `${path.rule} rule: ${path.label}`, height: 380,
    xaxis: {title: {text: path.axis}}, yaxis: {title: {text: data.metric}, type: p.logy === "1" ? "log" : "linear"}});
}

async function refreshDiagnostics() {
  const p = plotParams();
  const view = await api(`${BASE}/diagnostics?${query({x: p.x, colour: p.colour, where: state.where})}`);
  drawDiagnostics(view, p.logx === "1" ? "log" : "linear");
  const cov = document.getElementById("covariance");
  cov.hidden = !view.covariance_runs;
  if (view.covariance_runs) {
    const select = document.getElementById("cov-run");
    const chosen = select.value;
    select.replaceChildren(...view.covariance_runs.map(r => el("option", {value: String(r.run_id),
      text: `run ${r.run_id} (${r.measurements} measurements)`})));
    if (chosen && view.covariance_runs.some(r => String(r.run_id) === chosen)) select.value = chosen;
    await refreshSpectra();
  }
}

async function refreshSpectra() {
  const run = document.getElementById("cov-run").value;
  if (!run) return;
  drawSpectra(document.getElementById("plot-covariance"), await api(`${BASE}/covariance/${run}?x=step`));
}

function verdictCard(v) {
  const head = el("h3", {}, el("span", {class: `badge ${v.verdict}`, text: v.verdict}), ` ${v.check}`,
                  el("span", {class: "hint", text: ` · ${new Date(v.created_at).toLocaleString()} · statistic ${fmt(v.statistic)}`}));
  const parts = [head, el("p", {text: v.summary || ""})];
  if (v.tolerance && Object.keys(v.tolerance).length) {
    parts.push(el("p", {class: "hint", text: "tolerance: " + Object.entries(v.tolerance).map(([k, x]) => `${k} = ${fmt(x)}`).join("; ")}));
  }
  if (v.missing && v.missing.length) parts.push(el("p", {class: "hint", text: "to decide, add: " + v.missing.join("; ")}));
  if (v.evidence && v.evidence.length) {
    const wrap = el("div", {class: "table-wrap"});
    const keys = [...new Set(v.evidence.flatMap(r => Object.keys(r)))];
    renderTable(wrap, keys.map(key => ({key})), v.evidence);
    parts.push(el("details", {}, el("summary", {text: `evidence (${v.evidence.length} rows)`}), wrap));
  }
  if (v.history.length) {
    const wrap = el("div", {class: "table-wrap"});
    renderTable(wrap, ["created_at", "verdict", "statistic", "summary"].map(key => ({key})), v.history);
    parts.push(el("details", {}, el("summary", {text: `history (${v.history.length} earlier)`}), wrap));
  }
  return el("article", {class: "verdict"}, ...parts);
}

async function refreshVerdicts() {
  const data = await api(`${BASE}/verdicts`);
  const box = document.getElementById("verdicts");
  box.replaceChildren(...(data.latest.length ? data.latest.map(verdictCard)
    : [el("p", {class: "hint", text: "No verdict yet: run a check."})]));
}

async function refreshAll() {
  const results = await Promise.allSettled([refreshRuns(), refreshTrajectories(), refreshScaling(),
                                            refreshDiagnostics(), refreshVerdicts()]);
  const failed = results.filter(r => r.status === "rejected").map(r => r.reason.message);
  showError("page-error", failed.length ? `could not draw: ${failed.join("; ")}` : "");
  if (failed.length) throw new Error(failed[0]);
}

document.getElementById("filter").addEventListener("submit", e => {
  e.preventDefault();
  state.where = document.getElementById("where").value.trim();
  refreshAll().catch(err => showError("where-error", err.message));
});
document.getElementById("plot-controls").addEventListener("change", () => {
  Promise.all([refreshTrajectories(), refreshScaling(), refreshDiagnostics()]).catch(e => setLive(false, e.message));
});
document.getElementById("scaling-path").addEventListener("change", () => refreshScaling().catch(e => setLive(false, e.message)));
document.getElementById("cov-run").addEventListener("change", () => refreshSpectra().catch(e => setLive(false, e.message)));
document.getElementById("check-form").addEventListener("submit", async e => {
  e.preventDefault();
  const button = document.getElementById("run-check");
  const name = document.getElementById("check-name").value;
  button.disabled = true;
  button.textContent = "running…";
  try {
    await api(`${BASE}/checks/${encodeURIComponent(name)}`, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    showError("check-error", "");
    await refreshVerdicts();
  } catch (err) {
    showError("check-error", err.message);
  } finally {
    button.disabled = false;
    button.textContent = "run check";
  }
});

poll(refreshSummary);
