"""Figures made readable before the report saves them: empty panels say what to add, tick labels do not overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sweeper.report.panels import has_data, tidy

NEEDS = ["sweep.svag_l = [1, 2, 4, 8] (l = 1 is SGD)", "seeds = [0, 1] or more"]


@pytest.mark.parametrize("draw, expected", [
    (lambda ax: None, False),
    (lambda ax: (ax.axhline(1.0), ax.axvline(2.0), ax.axhspan(-1, 1), ax.axvspan(0.2, 0.4)), False),  # references
    (lambda ax: ax.plot([np.nan, np.nan], [1.0, 2.0]), False),
    (lambda ax: ax.plot([], []), False),
    (lambda ax: ax.errorbar([], [], yerr=[]), False),
    (lambda ax: ax.plot([1, 2], [3, 4]), True),
    (lambda ax: ax.scatter([1], [2]), True),
    (lambda ax: ax.errorbar([1, 2], [1, 2], yerr=[0.1, 0.2], fmt="none"), True),
    (lambda ax: ax.bar([1], [2]), True),
    (lambda ax: ax.fill_between([1, 2], [0, 0], [1, 1]), True),
    (lambda ax: ax.imshow(np.eye(3)), True),
], ids=["nothing", "reference-lines-and-bands", "nan-line", "empty-line", "empty-errorbar", "line", "scatter",
        "errorbar-only", "bar", "fill-between", "image"])
def test_has_data_counts_only_what_is_drawn_at_data_coordinates(draw, expected):
    ax = Figure().subplots()
    draw(ax)
    assert has_data(ax) is expected


def panel_text(ax: Axes) -> str:
    return "\n".join(t.get_text() for t in ax.texts)


def test_an_empty_panel_says_what_to_add_and_a_drawn_one_is_kept():
    fig = Figure(figsize=(10, 4))
    drawn, empty = fig.subplots(1, 2)
    drawn.plot([1, 2, 3], [3, 1, 2])
    empty.axhline(0.0)
    empty.set_title("rate of approach")
    assert tidy(fig, NEEDS) == 1
    assert drawn.axison and drawn.lines and not drawn.texts
    assert not empty.axison and not empty.lines  # no 0–1 frame left
    text = panel_text(empty)
    assert text.startswith("rate of approach") and "No data for this panel" in text
    flat = " ".join(text.split())
    assert "To get it, add to the study:" in flat and all(need in flat for need in NEEDS)


def test_a_figure_with_no_data_reports_none_and_each_panel_explains_itself():
    fig = Figure()
    panels = fig.subplots(1, 2)
    assert tidy(fig, []) == 0
    assert all(not ax.axison and "summary above says why" in " ".join(panel_text(ax).split()) for ax in panels)


def visible_labels(fig: Figure, ax: Axes) -> list:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in ax.get_xticklabels(which="both")
            if t.get_visible() and t.get_text()]


def overlapping(labels: list) -> list[tuple[str, str]]:
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(labels, 2) if box_a.overlaps(box_b)]


def sharpness_like() -> tuple[Figure, Axes]:
    """η/B over one decade on a log axis: every minor tick is labelled (2×10⁻³, 3×10⁻³, 4×10⁻³ run together)."""
    fig = Figure(figsize=(4.4, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.scatter([6e-4, 1.5e-3, 2.5e-3, 6.2e-3], [1.1, 1.5, 1.27, 1.1])
    ax.set(xscale="log", yscale="log")
    return fig, ax


def test_log_tick_labels_are_plain_numbers_that_do_not_overlap():
    fig, ax = sharpness_like()
    assert overlapping(visible_labels(fig, ax))  # the case the tidy-up exists for
    fig, ax = sharpness_like()
    tidy(fig)
    labels = visible_labels(fig, ax)
    assert not overlapping(labels)
    texts = [text for text, _ in labels]
    assert {"0.001", "0.002"} <= set(texts) and not any("times" in t for t in texts)  # not 2×10⁻³


def test_base_two_batch_axis_reads_as_batch_sizes():
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.scatter([8, 16, 32, 512], [1, 2, 3, 4])
    ax.set_xscale("log", base=2)
    tidy(fig)
    texts = {text for text, _ in visible_labels(fig, ax)}
    assert {"8", "16", "32", "512"} <= texts and not any("^" in t for t in texts)


def test_a_colorbar_is_not_an_empty_panel():
    fig = Figure()
    ax = fig.subplots()
    fig.colorbar(ax.scatter([1, 2], [1, 2], c=[1.0, 2.0]))
    assert tidy(fig) == 2 and all(a.axison for a in fig.axes)
