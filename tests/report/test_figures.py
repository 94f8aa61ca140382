"""The report's figures draw the quantities the verdicts rest on: the noise figure's B* is the nsr check's, the
sharpness figure's points are the final λ_max the sharpness check fits (constructed studies)."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from sweeper.checks import nsr, sharpness
from sweeper.checks.base import StudyData
from sweeper.report.figures import noise_ratio_figure, sharpness_figure
from tests.checks import test_nsr, test_sharpness


def drawn_b_stars(fig: Figure) -> list[float]:
    return sorted(float(line.get_xdata()[0]) for line in fig.axes[0].lines
                  if line.get_label().startswith("predicted B*"))


def verdict_b_stars(data: StudyData) -> list[float]:
    return sorted(e["B_star"] for e in nsr.check(data).evidence if e["what"] == "prediction (pooled)")


def two_paths() -> StudyData:
    """The nsr study twice, the copy at twice the base learning rate (a second linear path) with G_t doubled, so
    each path has its own B* (64 and 32)."""
    a, b = test_nsr.study(), test_nsr.study()
    shift = int(a.runs.run_id.max())
    b.runs = b.runs.assign(run_id=b.runs.run_id + shift, lr=b.runs.lr * 2,
                           config=[{"scaling": {**c["scaling"], "base_lr": 2 * test_nsr.LR0}} for c in b.runs.config])
    b.points = b.points.assign(run_id=b.points.run_id + shift, lr_t=b.points.lr_t * 2)
    b.diagnostics = b.diagnostics.assign(run_id=b.diagnostics.run_id + shift)
    b.diagnostics["summary.g_t"] *= 2
    return StudyData("two-paths", {}, pd.concat([a.runs, b.runs], ignore_index=True),
                     pd.concat([a.points, b.points], ignore_index=True),
                     pd.concat([a.diagnostics, b.diagnostics], ignore_index=True))


@pytest.mark.parametrize("make", [
    test_nsr.study,
    lambda: test_nsr.study(late_decay=True),  # rows after a decay and at step 0 are outside the window
    lambda: test_nsr.study(ratio={0: 0.2, 1: 0.2, 2: 0.02}),  # seeds disagree: pooled over the base seeds
    two_paths,
], ids=["one-path", "late-decay", "seeds-differ", "two-paths"])
def test_noise_figure_draws_the_b_star_of_the_nsr_verdict(make):
    data = make()
    expected = verdict_b_stars(data)
    drawn = noise_ratio_figure(data)
    assert expected and drawn_b_stars(drawn.figure) == expected
    assert all(f"B* = 2·B0·N̄/Ḡ = {b:.4g}" in drawn.caption for b in expected)


def test_noise_figure_without_a_linear_path_draws_no_b_star():
    data = test_nsr.study(scaling=False)
    drawn = noise_ratio_figure(data)
    assert nsr.check(data).verdict == "INCONCLUSIVE" and verdict_b_stars(data) == []
    assert drawn.figure is not None and drawn_b_stars(drawn.figure) == []
    assert "no B* prediction" in drawn.caption


def test_sharpness_figure_draws_the_final_values_the_check_fits():
    bad = [{"status": "diverged", "lr": 0.1, "batch_size": 8, "value": 1e6},
           {"status": "completed", "lr": 0.1, "batch_size": 512, "value": -3.0}]
    data = test_sharpness.study(-0.3, extra=bad)
    negative = int(data.runs.run_id.iloc[-1])  # an earlier positive λ_max must not stand in for its last one
    data.diagnostics = pd.concat([data.diagnostics, pd.DataFrame(
        [{"run_id": negative, "lr": 0.1, "batch_size": 512, "seed": 9, "step": 50, "kind": "sharpness",
          "value": 2.0}])], ignore_index=True)
    verdict = sharpness.check(data)
    drawn = sharpness_figure(data)
    points = {tuple(p) for c in drawn.figure.axes[0].collections for p in c.get_offsets().tolist()}
    assert points == {(r["temperature"], r["lambda_max"]) for r in verdict.details["runs"]}
    assert len(points) == len(data.runs) - 2 and "2 run(s) left out" in drawn.caption
