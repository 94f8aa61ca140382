"""What each check's ``Verdict.statistic`` is, with its units, in one line for the report's readers."""

from __future__ import annotations

STATISTIC = {
    "lsr": "the largest κ (batch-size multiple B/B0, no unit) up to which the linear scaling rule holds with no "
           "failing κ below it; the smallest such κ over the study's paths",
    "sqrt-rule": "the largest κ (batch-size multiple B/B0, no unit) up to which the square-root rule holds with no "
                 "failing κ below it; the smallest such κ over the study's paths",
    "svag": "the slope of log(distance between the trajectories at consecutive l) against log l (no unit; the "
            "SDE limit predicts ≤ −1, distance ∝ 1/l), of the first group with a rate; — when no group has ≥ 3 levels",
    "nsr": "B*/B_hold: the predicted largest good batch B* = τ·B0·N̄_t/Ḡ_t (τ = 2 by default) over the largest "
           "batch observed to hold (a ratio, no unit; agreement within ×2)",
    "intrinsic-lr": "the first tested part's number: P1 the worst angular update²/(2ηλ) (a ratio, 1 at equilibrium), "
                    "else P2 the slope of log|w|² on log(η/λ) (0.5 predicted), else P3 the slope of log T_eq on "
                    "log ηλ (−1 predicted)",
    "noise-rank": "the median over runs of the late n_eig_99/d: the fraction of the d parameter directions that "
                  "carry 99% of the gradient-noise covariance's trace (0–1; low rank when ≤ the tolerance)",
    "limit-cycles": "the Bonferroni-adjusted smallest p-value of the runs' Lévy-area tests (a probability, 0–1; small "
                    "rejects equilibrium)",
    "sharpness": "the slope s of log λ_max on log(η/B), λ_max ∝ (η/B)^s (no unit; flatter minima at higher "
                 "temperature predict s < 0)",
}
"""Check name (``Verdict.check``) → what its statistic is (the check modules' docstrings define them)."""


def statistic_note(check: str) -> str:
    """The line for ``check``, or a pointer to the check's documentation for a check not listed."""
    return STATISTIC.get(check, f"see the {check} check's documentation")
