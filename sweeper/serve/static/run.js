// A run page: its trajectory and diagnostics, refreshed while the run writes points.
"use strict";

const RUN = document.body.dataset.run;
const state = {points: null};

async function refreshTrajectory() {
  const v = formValues(document.getElementById("plot-controls"));
  const div = document.getElementById("plot-trajectory");
  const width = Math.max(100, Math.min(4000, Math.round(div.clientWidth || 800)));
  const data = await api(`/api/runs/${RUN}/trajectory?${query({metric: v.metric, x: v.x, logx: v.logx, width})}`);
  drawPlot(div, plotlyTraces(data.traces), {title: `${data.metric} against ${data.x}`, showlegend: false,
    xaxis: {title: {text: data.x}, type: v.logx === "1" ? "log" : "linear"},
    yaxis: {title: {text: data.metric}, type: v.logy === "1" ? "log" : "linear"}});
}

async function refreshDiagnostics() {
  const v = formValues(document.getElementById("plot-controls"));
  const view = await api(`/api/runs/${RUN}/diagnostics?${query({x: v.x})}`);
  drawDiagnostics(view, v.logx === "1" ? "log" : "linear");
  if (view.spectra) drawSpectra(document.getElementById("plot-covariance"), view.spectra);
}

async function refresh() {
  const run = await api(`/api/runs/${RUN}`);
  const status = document.getElementById("status");
  status.textContent = run.status;
  status.className = `badge ${run.status}`;
  document.getElementById("last-step").textContent = run.last_step === null ? "–" : String(run.last_step);
  document.getElementById("n-points").textContent = String(run.n_points);
  if (run.n_points !== state.points) {
    state.points = run.n_points;
    await Promise.all([refreshTrajectory(), refreshDiagnostics()]);
  }
}

document.getElementById("plot-controls").addEventListener("change", () => {
  Promise.all([refreshTrajectory(), refreshDiagnostics()]).catch(e => showError("run-error", e.message));
});
poll(refresh);
