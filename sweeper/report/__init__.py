"""A study's report: PNG figures and one self-contained HTML page (``write_report``).

``figures`` draws the standard study figures (matplotlib Figure API, no pyplot), ``html`` renders the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from sweeper.checks.base import StudyData, Verdict
from sweeper.report.figures import DEFAULT_NSR_THRESHOLD, StudyFigure, standard_figures
from sweeper.report.html import render
from sweeper.report.panels import tidy

__all__ = ["write_report", "standard_figures", "StudyFigure"]

FIGURE_DIR = "figures"
DPI = 100


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "figure"


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=DPI)


def write_report(data: StudyData, verdicts: list[Verdict], out_dir: Path,
                 check_figures: dict[str, Figure] | None = None, *,
                 nsr_threshold: float = DEFAULT_NSR_THRESHOLD) -> Path:
    """Write ``out_dir/index.html`` and its PNGs under ``out_dir/figures/``; returns the page's path.

    ``check_figures``: check name (``Verdict.check``) → that check's figure, shown with its verdict; its empty
    panels say what to add instead (the verdict's ``missing``), and a figure with no data at all is left out
    (``sweeper.report.panels``). The standard figures are drawn when the data has what they need
    (``sweeper.report.figures``); ``nsr_threshold`` is the G/N failure threshold of the noise figure
    (docs/theory.md §2, default 2).
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    needs = {v.check: v.missing for v in verdicts}
    check_images: dict[str, str | None] = {}
    for name, figure in (check_figures or {}).items():
        if figure is None:
            continue
        if not tidy(figure, needs.get(name, [])):
            check_images[name] = None
            continue
        file = f"check-{_stem(name)}.png"
        _save(figure, fig_dir / file)
        check_images[name] = f"{FIGURE_DIR}/{file}"
    entries: list[tuple[str, str, str | None, str]] = []
    for fig in standard_figures(data, nsr_threshold=nsr_threshold):
        src = None
        if fig.figure is not None:
            tidy(fig.figure)
            file = f"{_stem(fig.key)}.png"
            _save(fig.figure, fig_dir / file)
            src = f"{FIGURE_DIR}/{file}"
        entries.append((fig.title, fig.caption, src, fig.missing))
    page = out_dir / "index.html"
    page.write_text(render(data, verdicts, check_images, entries), encoding="utf-8")
    return page
