"""``sqrt-rule`` on constructed studies whose answer is known (both ways, and INCONCLUSIVE), plus the example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import sqrt_rule
from sweeper.checks.base import StudyData
from tests.checks.test_lsr import _run_example, noisy, path_study


def with_control(sqrt_offset, linear_offset, optimizer: str = "adam", **kw) -> StudyData:
    """A square-root path and a linear control arm of ``optimizer``. The control's points carry the adaptive SDE
    time k·η², which at equal epochs is κ× the baseline's, as in a real study: the check must compare it by epoch."""
    sq = path_study(noisy(sqrt_offset), rule="sqrt", optimizer=optimizer, lr0=1e-3, **kw)
    lin = path_study(noisy(linear_offset), rule="linear", optimizer=optimizer, lr0=1e-3, **kw)
    shift = int(sq.runs.run_id.max())
    lin.runs["run_id"] += shift
    lin.points["run_id"] += shift
    kappa = lin.points.run_id.map(lin.runs.set_index("run_id").kappa)
    lin.points["sde_time"] = lin.points.epoch * kappa
    return StudyData("constructed", {}, pd.concat([sq.runs, lin.runs], ignore_index=True),
                     pd.concat([sq.points, lin.points], ignore_index=True), pd.DataFrame())


def test_confirmed_and_reports_a_failing_linear_control_arm():
    v = sqrt_rule.check(with_control(lambda k: 0.0, lambda k: 0.1 * np.log2(k)))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.statistic == 8.0
    control = v.details["control"][0]
    assert control["status"] == "REFUTED" and control["first_failing"] == 2.0 and control["axis"] == "epoch"
    assert "linear control arm" in v.summary and "fails from κ = 2" in v.summary
    assert {r["arm"] for r in v.evidence} == {"sqrt", "linear"}


def test_control_arm_is_compared_at_equal_epochs_not_equal_k_eta_squared():
    """Identical curves by epoch: the control holds; on its k·η² axis they would look shifted and fail."""
    v = sqrt_rule.check(with_control(lambda k: 0.0, lambda k: 0.0))
    assert v.details["control"][0]["status"] == "CONFIRMED"


def test_refuted_when_the_sqrt_path_departs():
    v = sqrt_rule.check(with_control(lambda k: 0.15 if k >= 4 else 0.0, lambda k: 0.0, optimizer="rmsprop"))
    assert v.verdict == "REFUTED", v.summary
    assert v.statistic == 2.0
    assert v.details["control"][0]["status"] == "CONFIRMED"  # the control arm does not decide


def test_divergence_on_the_sqrt_path_fails():
    v = sqrt_rule.check(with_control(lambda k: 0.0, lambda k: 0.0, diverged={8.0: 2.0}))
    assert v.verdict == "REFUTED" and v.statistic == 4.0


def test_works_without_control_arm():
    v = sqrt_rule.check(path_study(noisy(lambda k: 0.0), rule="sqrt", optimizer="adam", lr0=1e-3))
    assert v.verdict == "CONFIRMED" and "no linear control arm" in v.summary


@pytest.mark.parametrize("study, needs", [
    (path_study(noisy(lambda k: 0.0), rule="linear", optimizer="adam"), "[scaling]"),
    (path_study(noisy(lambda k: 0.0), rule="sqrt", optimizer="sgd"), "adam"),
])
def test_inconclusive_on_incomplete_studies(study, needs):
    v = sqrt_rule.check(study)
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert any(needs in m for m in v.missing), v.missing


def test_inconclusive_when_noise_hides_the_answer():
    v = sqrt_rule.check(path_study(noisy(lambda k: 0.0, sd=0.3), rule="sqrt", optimizer="adam"))
    assert v.verdict == "INCONCLUSIVE"


def test_figure_draws_both_arms():
    study = with_control(lambda k: 0.0, lambda k: 0.1 * np.log2(k))
    fig = sqrt_rule.figure(study, sqrt_rule.check(study))
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert any(lab.startswith("sqrt") for lab in labels) and any(lab.startswith("linear") for lab in labels)


@pytest.mark.slow
def test_example_sqrt_rule(tmp_path, one_thread):
    v = sqrt_rule.check(_run_example("sqrt-rule.toml", tmp_path))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.details["control"] and v.details["control"][0]["status"] == "REFUTED", v.summary
