// The studies list, refreshed every POLL_MS.
"use strict";

const STUDY_COLUMNS = [
  {key: "name", link: r => `/studies/${encodeURIComponent(r.name)}`},
  {key: "status", badge: true},
  {key: "n_runs", label: "runs"},
  {key: "n_completed", label: "completed"}, {key: "n_running", label: "running"}, {key: "n_pending", label: "pending"},
  {key: "n_failed", label: "failed"}, {key: "n_diverged", label: "diverged"},
  {key: "progress", format: v => `${Math.round(100 * v)}%`},
  {key: "n_points", label: "points"},
  {key: "last_write", label: "last write", format: v => v ? new Date(v).toLocaleString() : ""},
  {key: "created_at", label: "created", format: v => v ? new Date(v).toLocaleString() : ""},
];

poll(async () => {
  try {
    const data = await api("/api/studies");
    showError("studies-error", data.studies.length ? "" : "The database has no studies yet: sweeper launch SPEC.toml");
    renderTable(document.getElementById("studies"), STUDY_COLUMNS, data.studies);
  } catch (e) {
    showError("studies-error", e.message);
    throw e;
  }
});
