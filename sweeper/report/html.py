"""The study report page: one self-contained HTML file (inline CSS, images by relative path), all text escaped.

Sections: the study's spec (TOML: the fields it sets, and every field on request), its runs table (hyperparameters,
status, final metrics), the verdicts at a glance with what each statistic is, every verdict (badge, summary,
statistic, tolerance with its why, parameters, evidence table, missing items, the check's figure or why there is
none), then the standard figures (and, for those not drawn, what the study would need). Tables keep each column
readable: short cells do not wrap, long text wraps within a minimum width, and a table wider than the page scrolls
sideways in its own box. A small inline script records, after the page loads, how many images decoded
(``<body data-images-loaded="n" data-images-total="m">``), the narrowest long-text cell
(``data-narrowest-text-px``) and how far the page overflows the window (``data-page-overflow-px``), so a headless
browser can check the page renders with its figures and without crushed columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from db.models import RUN_HPARAMS
from sweeper.checks.base import StudyData, Verdict
from sweeper.report.spec_toml import full_toml, set_fields_toml
from sweeper.report.statistic_notes import statistic_note

RUN_COLUMNS = ["run_id", "trial_id", *(k for k in RUN_HPARAMS if k not in ("model", "dataset")), "status", "steps_done",
               "diverged_step"]
FINAL_METRICS = ["sde_time", "train_loss", "test_loss", "train_acc", "test_acc"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;
     padding:0 1em;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;table-layout:auto}
th,td{border:1px solid #ddd;padding:2px 6px;white-space:nowrap;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{white-space:normal;min-width:16em;max-width:36em;overflow-wrap:anywhere}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;overflow:auto;max-height:40em;font-size:.85em}
details summary{cursor:pointer;color:#444} .note{color:#555} .nofig{color:#8a4b00}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600;font-size:.85em}
.CONFIRMED{background:#2e7d32} .REFUTED{background:#c62828} .INCONCLUSIVE{background:#757575}
.verdict{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.verdict h3{margin:.2em 0} .why{color:#555;font-style:italic} .missing li{color:#8a4b00}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#444}
.scroll{overflow:auto;max-height:40em;max-width:100%}
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.getElementsByTagName("img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.dataset.imagesLoaded = String(ok);
  document.body.dataset.imagesTotal = String(imgs.length);
  var cells = document.querySelectorAll("td.text"), narrowest = Infinity;
  for (var j = 0; j < cells.length; j++) { narrowest = Math.min(narrowest, cells[j].getBoundingClientRect().width); }
  document.body.dataset.narrowestTextPx = cells.length ? String(Math.round(narrowest)) : "none";
  var page = document.documentElement;
  document.body.dataset.pageOverflowPx = String(page.scrollWidth - page.clientWidth);
});
"""


def fmt(value: Any) -> str:
    """A cell's text (not yet escaped): numbers to 4 significant digits, missing values as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


TEXT_CELL = 20
"""A cell whose text is longer than this many characters wraps (within ``td.text``'s minimum width)."""


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _cell(value: Any) -> str:
    text = fmt(value)
    kind = " class=num" if _is_num(value) else " class=text" if len(text) > TEXT_CELL else ""
    return f"<td{kind}>{escape(text)}</td>"


def table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """An HTML table of row dicts (columns: the union of the rows' keys in first-seen order, unless given)."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    columns = list(columns)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>"
        for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def runs_rows(data: StudyData) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run: its hyperparameters (those present and not all empty), status and final metrics (the last
    finite value of each point metric, named ``final_<metric>``)."""
    runs = data.runs
    cols = [c for c in RUN_COLUMNS if c in runs and runs[c].notna().any()]
    finals: dict[Any, dict[str, Any]] = {}
    pts = data.points
    metric_cols = [m for m in FINAL_METRICS if m in pts and pts[m].notna().any()] if not pts.empty else []
    if metric_cols:
        ordered = pts.sort_values("step")
        for metric in metric_cols:
            last = ordered[["run_id", metric]].dropna().groupby("run_id")[metric].last()
            for run_id, value in last.items():
                finals.setdefault(run_id, {})[f"final_{metric}"] = value
    names = [f"final_{m}" for m in metric_cols]
    rows = [{**{c: row[c] for c in cols}, **finals.get(row["run_id"], {})} for _, row in runs.iterrows()]
    return rows, cols + names


def _image(src: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{escape(src)}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def verdict_overview(verdicts: Sequence[Verdict]) -> str:
    """The verdicts at a glance: check, verdict, statistic, and what that statistic is (with its units)."""
    return table([{"check": v.check, "verdict": v.verdict, "statistic": v.statistic,
                   "what the statistic is": statistic_note(v.check)} for v in verdicts])


def _no_figure(verdict: Verdict) -> str:
    hint = " — add what is listed under Missing above to get it" if verdict.missing else ""
    return f'<p class="nofig">No figure: the study has no data for any of its panels{hint}.</p>'


def verdict_section(verdict: Verdict, figure_src: str | None, *, figure_empty: bool = False) -> str:
    """One verdict: badge, summary, statistic (and what it is), tolerance (with its why), parameters, evidence,
    missing, then its figure, or (``figure_empty``) a line saying it had no data to draw."""
    parts = [(f'<div class="verdict"><h3><span class="badge {escape(verdict.verdict)}">{escape(verdict.verdict)}'
              f"</span> {escape(verdict.check)}</h3>"), f"<p>{escape(verdict.summary)}</p>",
             (f"<p><b>Statistic:</b> {escape(fmt(verdict.statistic))} "
              f'<span class="note">({escape(statistic_note(verdict.check))})</span></p>')]
    tolerance = dict(verdict.tolerance)
    why = tolerance.pop("why", None)
    if tolerance or why:
        parts.append("<p><b>Tolerance:</b> " + escape(", ".join(f"{k} = {fmt(v)}" for k, v in tolerance.items()))
                     + "</p>")
        if why:
            parts.append(f'<p class="why">Why: {escape(str(why))}</p>')
    if verdict.parameters:
        parts.append("<p><b>Parameters:</b> "
                     + escape(", ".join(f"{k} = {fmt(v)}" for k, v in verdict.parameters.items())) + "</p>")
    if verdict.missing:
        parts.append('<p><b>Missing (add to the spec):</b></p><ul class="missing">'
                     + "".join(f"<li>{escape(str(m))}</li>" for m in verdict.missing) + "</ul>")
    if verdict.evidence:
        parts.append("<p><b>Evidence:</b></p>" + table(verdict.evidence))
    if figure_src:
        parts.append(_image(figure_src, f"{verdict.check} figure", f"Figure of the {verdict.check} check."))
    elif figure_empty:
        parts.append(_no_figure(verdict))
    parts.append("</div>")
    return "\n".join(parts)


def spec_section(spec: dict[str, Any]) -> str:
    """The spec as TOML: the fields the study sets, then every field (folded); every field alone when the stored spec
    no longer validates."""
    full = f"<pre>{escape(full_toml(spec))}</pre>"
    set_fields = set_fields_toml(spec)
    if set_fields is None:
        return ("<p>Every field of the stored spec, as TOML (it does not validate against this version of sweeper, "
                "so the fields it sets cannot be told from defaults):</p>" + full)
    return ("<p>The fields this study sets, as TOML (every other field at its default); saved as a file, "
            "<code>sweeper launch</code> runs the same study.</p>"
            f'<pre class="toml">{escape(set_fields)}</pre>'
            f"<details><summary>Every field, defaults included</summary>{full}</details>")


def render(data: StudyData, verdicts: Sequence[Verdict], check_images: dict[str, str | None],
           figures: Sequence[tuple[str, str, str | None, str]]) -> str:
    """The page. ``check_images``: check name → relative image path, or None for a figure with no data;
    ``figures``: (title, caption, relative image path or None, what is missing) for each standard figure."""
    rows, cols = runs_rows(data)
    counts = data.runs.status.value_counts().to_dict() if "status" in data.runs else {}
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    body = [f"<h1>Study {escape(data.name)}</h1>",
            f"<p>{len(data.runs)} runs ({escape(status)}); {len(verdicts)} verdicts.</p>",
            "<h2>Spec</h2>", spec_section(data.spec),
            "<h2>Runs</h2>", table(rows, cols),
            "<h2>Verdicts</h2>"]
    if verdicts:
        body.append(verdict_overview(verdicts))
    body += [verdict_section(v, check_images.get(v.check),
                             figure_empty=v.check in check_images and check_images[v.check] is None)
             for v in verdicts] or ["<p><em>(no verdicts)</em></p>"]
    body.append("<h2>Figures</h2>")
    missing = []
    for title, caption, src, need in figures:
        if src:
            body.append(f"<h3>{escape(title)}</h3>" + _image(src, title, caption))
        else:
            missing.append(f"<li>{escape(title)}: {escape(need)}</li>")
    if missing:
        body.append("<p>Not drawn (the study lacks what they need):</p><ul>" + "".join(missing) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(f'Study {data.name} — report')}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
