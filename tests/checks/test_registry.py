"""Running checks by name: a study with unfinished runs never gets more than a provisional verdict."""

from __future__ import annotations

from sweeper.checks.registry import run_check
from tests.checks.test_lsr import noisy, path_study


def test_unfinished_runs_make_any_verdict_provisional():
    """κ = 8 fails, but its runs are still pending: the finished κ = 1, 2, 4 alone would say CONFIRMED."""
    data = path_study(noisy(lambda k: 0.2 if k >= 8 else 0.0))
    done = run_check("lsr", data)
    assert done.verdict == "REFUTED"
    pending = data.runs.kappa == 8.0
    data.runs.loc[pending, "status"] = "pending"
    data.points = data.points[~data.points.run_id.isin(data.runs.run_id[pending])]
    v = run_check("lsr", data)
    assert v.verdict == "INCONCLUSIVE" and v.summary.startswith("Provisional (3 of 12 runs unfinished)")
    assert v.details["provisional"]["verdict"] == "CONFIRMED" and "unfinished" in v.missing[0]
