"""Defaults shared by the checks that compare runs at equal time (lsr, sqrt-rule, svag, nsr), with their reasons.

RELATIVE: the tolerance is r = 5% of the reference run's metric per window — a quarter of the 20% failure line
(test error ≥ 1.2× the baseline, docs/theory.md §2), and wider than what the references count as holding (Goyal et
al.: 0.6% relative top-1 error at 8k; the square-root rule: within 3 points of accuracy).
ALPHA: 5% — the level of each equivalence test (an all-windows claim needs no correction) and the family-wise
level of the failure calls (Holm over every window of every comparison in the family).
WINDOWS: five equal windows of time; the last one is the "final" value.
"""

from __future__ import annotations

METRIC = "test_loss"
RELATIVE = 0.05
ALPHA = 0.05
WINDOWS = 5
ADAPTIVE = ("adam", "rmsprop")
SEEDS_HINT = "seeds = [0, 1] or more (one seed is judged on its own trajectory; more seeds measure seed spread)"

TOLERANCE_WHY = (
    "τ_k = r·|reference metric in window k|, r = {r:g}: a quarter of the 20% failure line (docs/theory.md §2) and "
    "wider than what the references count as holding. Each run's window mean has an autocorrelation-aware error "
    "from its own points; seeds are combined with the between-seed overdispersion φ pooled over the family. "
    "holds: the one-sided {pct:g}% bounds of Δ lie within ±τ in every window (equivalence at level α = {a:g}); "
    "fails: |Δ| > τ in some window at family-wise level α (Holm over all windows), or a run diverged. K = {k} "
    "windows."
)


def tolerance_why(relative: float, alpha: float, windows: int) -> str:
    return TOLERANCE_WHY.format(r=relative, a=alpha, pct=100 * (1 - alpha), k=windows)
