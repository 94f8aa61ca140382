"""Make a figure readable before the report saves it: empty panels say what to add, tick labels do not overlap.

Any figure goes through :func:`tidy` (the standard figures and every check's figure alike):

* a panel (``Axes``) with no data — nothing plotted at data coordinates in both x and y; reference lines and bands
  (``axhline``, ``axvspan``) do not count — loses its empty 0–1 frame and shows, in words, what the study needs for
  it (``needs``, e.g. the verdict's ``missing`` items);
* log axes label their ticks as plain numbers where that is short (8, 16, 0.002; not 2³ or 2×10⁻³);
* where tick labels of one axis would still overlap, the later ones are left blank (major ticks keep priority).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.scale import LogTransform
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation
from matplotlib.transforms import Bbox

WRAP = 48
"""Characters per line of an empty panel's text."""

PLAIN_RANGE = (1e-4, 1e5)
"""Log-axis tick values in this range are written as plain numbers (``f"{v:g}"``)."""


def _finite_points(points: object) -> bool:
    values = np.asarray(points, dtype=float)
    return values.size > 0 and bool(np.isfinite(values.reshape(-1, 2) if values.ndim else values).all(axis=-1).any())


def _collection_has_data(ax: Axes, collection: Collection) -> bool:
    if collection.get_offset_transform() is ax.transData and _finite_points(collection.get_offsets()):
        return True
    return collection.get_transform() is ax.transData and any(
        _finite_points(path.vertices) for path in collection.get_paths())


def has_data(ax: Axes) -> bool:
    """Whether anything is drawn at data coordinates (x and y) on ``ax``: a line, markers, a collection (scatter,
    error bars, fill_between), a data-space patch (bars) or an image."""
    if ax.images:
        return True
    if any(line.get_transform() is ax.transData and _finite_points(np.column_stack(line.get_data()))
           for line in ax.lines if np.size(line.get_xdata())):
        return True
    if any(_collection_has_data(ax, c) for c in ax.collections):
        return True
    return any(p.get_data_transform() is ax.transData for p in ax.patches)


def empty_panel_text(needs: Sequence[str]) -> str:
    """The words an empty panel shows: what to add to the study to get it."""
    head = "No data for this panel."
    if not needs:
        return head + "\n" + textwrap.fill("The study measured nothing it draws; the summary above says why.", WRAP)
    items = "\n".join(textwrap.fill(f"• {item}", WRAP, subsequent_indent="  ") for item in needs)
    return f"{head}\nTo get it, add to the study:\n{items}"


def explain_empty(figure: Figure, needs: Sequence[str]) -> int:
    """Replace each empty visible panel of ``figure`` by :func:`empty_panel_text`; returns how many panels have data
    (0: the figure shows nothing, better left out)."""
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.axison]
    drawn = [ax for ax in panels if has_data(ax)]
    for ax in panels:
        if ax in drawn:
            continue
        title = ax.get_title()
        ax.clear()
        ax.set_axis_off()
        text = empty_panel_text(needs)
        ax.text(0.5, 0.5, f"{title}\n\n{text}" if title else text, transform=ax.transAxes, ha="center",
                va="center", fontsize=10, color="#8a4b00")
    return len(drawn)


class _PlainLogFormatter(LogFormatterSciNotation):
    """The log formatter's choice of which ticks to label, with the short ones written as plain numbers."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos)
        return f"{x:g}" if label and PLAIN_RANGE[0] <= abs(x) < PLAIN_RANGE[1] else label


def _plain_log_ticks(axis: Axis) -> None:
    if axis.get_scale() != "log":
        return
    base = cast(LogTransform, axis.get_transform()).base
    for which, formatter in (("major", axis.get_major_formatter()), ("minor", axis.get_minor_formatter())):
        if type(formatter) is LogFormatterSciNotation:  # exactly: a subclass is the figure's own choice
            plain = _PlainLogFormatter(base, labelOnlyBase=formatter.labelOnlyBase)
            (axis.set_major_formatter if which == "major" else axis.set_minor_formatter)(plain)


def _keep_apart(axis: Axis, renderer: RendererBase) -> None:
    """Blank the tick labels of ``axis`` that overlap an earlier kept one (majors first, then minors, each in
    order of position); a tick the next draw places anew keeps its formatter's label."""
    kept: list[Bbox] = []
    texts: dict[str, str] = {}
    overlapped = False
    for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
        for tick in sorted(ticks, key=lambda t: t.get_loc()):
            label = tick.label1
            if not label.get_visible() or not label.get_text():
                continue
            box = label.get_window_extent(renderer).expanded(1.15, 1.0)
            clash = any(box.overlaps(other) for other in kept)
            overlapped |= clash
            if not clash:
                kept.append(box)
            texts[f"{tick.get_loc():.12g}"] = "" if clash else label.get_text()
    if not overlapped:
        return
    for setter, formatter in ((axis.set_major_formatter, axis.get_major_formatter()),
                              (axis.set_minor_formatter, axis.get_minor_formatter())):
        setter(FuncFormatter(lambda v, pos, f=formatter: texts.get(f"{v:.12g}", f(v, pos))))


def tidy(figure: Figure, needs: Sequence[str] = ()) -> int:
    """Make ``figure`` readable (module docstring); returns how many panels have data."""
    with_data = explain_empty(figure, needs)
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            _plain_log_ticks(axis)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in figure.axes:
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                _keep_apart(axis, renderer)
    return with_data
