// A run page: status, counts and error polled every POLL_MS; trajectory and diagnostics redrawn when the run's
// point count changed since the last successful draw.
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
  document.getElementById("attempts").textContent = String(run.attempts);
  document.getElementById("host").textContent = run.host || "";
  document.getElementById("host-box").hidden = !run.host;
  document.getElementById("error-text").textContent = run.error || "";
  document.getElementById("error").hidden = !run.error;
  if (run.n_points !== state.points) {
    await Promise.all([refreshTrajectory(), refreshDiagnostics()]);
    state.points = run.n_points;  // only once drawn: a failed draw is tried again at the next poll
  }
}

document.getElementById("plot-controls").addEventListener("change", () => {
  Promise.all([refreshTrajectory(), refreshDiagnostics()]).catch(e => showError("page-error", e.message));
});
poll(refresh);
