"""The study report: written from a real small study (run in-process), then opened in a headless Chromium at
1400 px, as a researcher would read it.

The browser test needs ``chromium`` on PATH (``.ci/chromium.sh`` installs it; the ``chromium`` fixture of
tests/conftest.py): skipped locally without it, but fails when ``CI`` is set, so CI cannot skip it silently.
"""

from __future__ import annotations

import html
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from db.engine import open_db
from sweeper.checks import registry
from sweeper.checks.base import StudyData, Verdict
from sweeper.launch.inline import run_inline
from sweeper.report import write_report
from sweeper.report.spec_toml import without_nulls
from sweeper.report.statistic_notes import statistic_note
from sweeper.spec import parse_spec
from tests.browser import browse
from tests.helpers import make_spec

STANDARD = ["metric_kappa", "metric_l", "noise_ratio", "lr_angular", "covariance_spectra", "sharpness"]
EVIL = '<script>alert("x")</script> & <b>bold</b>'
WHY = "every window within tolerance (closest: window 4, |Δ| + h = 0.000637 ≤ 0.0256)"
PATH = "sgd B0=8 lr0=0.05 wd=0 l=1"
WIDE = {f"extra_column_{i}": 0.001 * i for i in range(16)}  # makes the evidence table wider than the page


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyData:
    """linreg on a linear scaling path κ ∈ {1, 2} × svag_l ∈ {1, 2} × 2 seeds, 1 epoch, noise + covariance +
    sharpness diagnostics (8 runs, about 2 s)."""
    spec = make_spec(
        name="report-study", seeds=[0, 1],
        data={"name": "linreg", "n_train": 512, "dim": 8, "condition": 4.0, "noise": 1.0},
        sweep={"batch_size": [8], "lr": [0.05], "svag_l": [1, 2]},
        scaling={"rule": "linear", "factors": [1, 2]},
        log={"every_epochs": 0.25, "eval_samples": 256},
        diagnostics={"noise": {"batches": 20}, "covariance": {"samples": 64, "top_k": 8},
                     "sharpness": {"batch_size": 64, "max_iterations": 20}})
    db = tmp_path_factory.mktemp("report-db") / "sweeper.db"
    engine = open_db(f"sqlite:///{db}", create=True)
    try:
        assert set(run_inline(spec, engine).values()) == {"completed"}
        return StudyData.load(engine, "report-study")
    finally:
        engine.dispose()


def verdicts(study: StudyData) -> list[Verdict]:
    """A hand-made lsr verdict (every kind of field, long text, hostile text), the study's real limit-cycles verdict
    (no trajectory diagnostic: INCONCLUSIVE, with what to add) and a hand-made one whose missing item is hostile."""
    return [
        Verdict("lsr", "CONFIRMED", f"LSR holds up to κ = 2 {EVIL}", statistic=0.0123,
                parameters={"metric": "test_loss"},
                tolerance={"z": 3.0, "why": "3 standard errors of the seed-replicate difference"},
                evidence=[{"path": PATH, "kappa": 1.0, "final_test_loss": 0.52, "se": 0.01, "why": "—", **WIDE},
                          {"path": PATH, "kappa": 2.0, "final_test_loss": 0.53, "se": 0.012, "why": WHY,
                           "note": EVIL, **WIDE}]),
        registry.run_check("limit-cycles", study),
        Verdict("noise-rank", "INCONCLUSIVE", "No covariance diagnostic recorded.", missing=[f"and {EVIL}"]),
    ]


def check_figure() -> Figure:
    """An lsr figure with one drawn panel and one empty (only a reference line)."""
    fig = Figure(figsize=(8, 3))
    drawn, empty = fig.subplots(1, 2)
    drawn.plot([1, 2, 3], [3, 1, 2], marker="o")
    drawn.set_title("lsr check figure")
    empty.axhline(0.0)
    empty.set_title("rate panel")
    return fig


@pytest.fixture(scope="module")
def figures(study: StudyData) -> dict[str, Figure]:
    limit_cycles = verdicts(study)[1]
    return {"lsr": check_figure(), "limit-cycles": registry.figure("limit-cycles", study, limit_cycles)}


@pytest.fixture(scope="module")
def report(study: StudyData, figures: dict[str, Figure], tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib (or other) warning while the report is written
        return write_report(study, verdicts(study), tmp_path_factory.mktemp("report"), check_figures=figures)


def pre_text(page: str, css_class: str | None = None) -> list[str]:
    attr = f' class="{css_class}"' if css_class else ""
    return [html.unescape(t) for t in re.findall(f"<pre{attr}>(.*?)</pre>", page, flags=re.S)]


def img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_writes_page_and_every_standard_figure(report: Path, study: StudyData):
    assert report.name == "index.html" and report.is_file()
    page = report.read_text(encoding="utf-8")
    sources = img_sources(page)
    assert sorted(sources) == sorted([f"figures/{k}.png" for k in STANDARD] + ["figures/check-lsr.png"])
    for src in sources:
        assert not Path(src).is_absolute()
        assert (report.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every section, every run, every verdict with its pieces.
    for heading in ("Spec", "Runs", "Verdicts", "Figures"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<tr>") >= len(study.runs) + 1
    for trial_id in study.runs.trial_id:
        assert f">{trial_id}<" in page
    assert "final_test_loss" in page and "final_train_loss" in page
    assert 'class="badge CONFIRMED"' in page and 'class="badge INCONCLUSIVE"' in page
    assert "3 standard errors of the seed-replicate difference" in page
    assert html.escape(verdicts(study)[1].missing[0]) in page
    assert "0.0123" in page
    # All text escaped: the only script is the page's own.
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert page.count("<script>") == 1


def test_spec_is_toml_that_parses_back_to_the_stored_spec(report: Path, study: StudyData):
    page = report.read_text(encoding="utf-8")
    [set_fields] = pre_text(page, "toml")
    assert 'name = "report-study"' in set_fields and "svag_l = [1.0, 2.0]" in set_fields
    assert "precision" not in set_fields  # a default: the file does not say it
    assert parse_spec(tomllib.loads(set_fields)).model_dump(mode="json") == study.spec
    [every_field] = re.findall(r"<details><summary>Every field, defaults included</summary><pre>(.*?)</pre>", page,
                               flags=re.S)
    assert tomllib.loads(html.unescape(every_field)) == without_nulls(study.spec)


def test_each_statistic_says_what_it_is(report: Path, study: StudyData):
    page = report.read_text(encoding="utf-8")
    assert "<th>what the statistic is</th>" in page
    for verdict in verdicts(study):
        assert page.count(html.escape(statistic_note(verdict.check))) == 2  # overview and section


def test_empty_check_panels_say_what_to_add_and_an_empty_figure_is_left_out(report: Path, study: StudyData,
                                                                           figures: dict[str, Figure]):
    page = report.read_text(encoding="utf-8")
    assert "figures/check-lsr.png" in img_sources(page) and "check-limit-cycles" not in page
    assert not (report.parent / "figures" / "check-limit-cycles.png").exists()
    limit_cycles = page[page.index("</span> limit-cycles</h3>"):]
    assert limit_cycles[:limit_cycles.index("</div>")].count(
        "No figure: the study has no data for any of its panels — add what is listed under Missing above") == 1
    # The saved lsr figure: its drawn panel kept, its empty one replaced by words (no 0–1 frame).
    drawn, empty = figures["lsr"].axes
    assert drawn.axison and not empty.axison and not empty.lines
    assert "No data for this panel" in empty.texts[0].get_text()
    # Every panel of the all-empty limit-cycles figure says what to add (the verdict's missing items).
    need = " ".join(verdicts(study)[1].missing[0].split())[:40]
    assert all(need in " ".join(ax.texts[0].get_text().split()) for ax in figures["limit-cycles"].axes
               if ax.texts)


def test_long_cells_wrap_within_a_minimum_width(report: Path):
    page = report.read_text(encoding="utf-8")
    assert "td.text{white-space:normal;min-width:16em;max-width:36em;overflow-wrap:anywhere}" in page
    assert "th,td{border:1px solid #ddd;padding:2px 6px;white-space:nowrap" in page
    assert f"<td class=text>{html.escape(WHY)}</td>" in page
    assert f"<td class=text>{PATH}</td>" in page and "<td class=num>0.52</td>" in page
    assert "<td>—</td>" in page  # a short text cell does not wrap


def test_figures_need_their_data(study: StudyData, tmp_path: Path):
    """Without diagnostics, scaling path or SVAG, those figures are not drawn and the page says what is missing."""
    runs = study.runs[(study.runs.kappa == 1) & (study.runs.svag_l == 1)]
    bare = StudyData(study.name, study.spec, runs, study.points[study.points.run_id.isin(runs.run_id)],
                     study.diagnostics.iloc[0:0])
    page = write_report(bare, [], tmp_path).read_text(encoding="utf-8")
    assert img_sources(page) == ["figures/lr_angular.png"]
    assert "add [diagnostics.noise]" in page and "add [diagnostics.covariance]" in page
    assert "add [diagnostics.sharpness]" in page and "add svag_l = [1, 4] to [sweep]" in page
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["lr_angular.png"]


def test_report_renders_in_headless_chromium(chromium: str, report: Path, tmp_path: Path):
    url = report.resolve().as_uri()
    n_img = len(img_sources(report.read_text(encoding="utf-8")))
    assert n_img == len(STANDARD) + 1
    # The DOM after load: the page's script counts the <img> elements that decoded (naturalWidth > 0).
    dom = browse(chromium, tmp_path / "profile", "--window-size=1400,2400", "--virtual-time-budget=10000",
                 "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500] + dom.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    total = re.search(r'data-images-total="(\d+)"', body.group(0))
    assert loaded and total, f"the page's load script did not run: {body.group(0)}"
    assert int(total.group(1)) == n_img == dom.stdout.count("<img ")
    assert int(loaded.group(1)) == n_img > 0
    assert "<script>alert" not in dom.stdout  # escaped text stays text in the parsed DOM
    # Laid out at 1400 px: long cells keep their width (no word per line), the wide evidence table scrolls in its
    # own box, the page itself does not overflow sideways.
    narrowest = re.search(r'data-narrowest-text-px="(\d+)"', body.group(0))
    overflow = re.search(r'data-page-overflow-px="(-?\d+)"', body.group(0))
    assert narrowest and int(narrowest.group(1)) >= 150, body.group(0)
    assert overflow and int(overflow.group(1)) <= 0, body.group(0)
    # A screenshot: the page paints (text, tables and figures: many colours, not a blank page).
    shot = tmp_path / "page.png"
    res = browse(chromium, tmp_path / "profile", "--window-size=1400,2400", "--virtual-time-budget=10000",
                 f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1400)
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert rgb.std() > 20
    assert len(np.unique(rgb, axis=0)) > 200
    assert (rgb.min(axis=1) < 128).mean() > 0.01  # some dark ink (text, axes) on the white page
