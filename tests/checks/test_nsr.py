"""``nsr`` on constructed studies whose answer is known (both ways, and INCONCLUSIVE), plus the example spec."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import nsr
from sweeper.checks.base import StudyData

B0, LR0 = 8, 0.05
KAPPAS = (1, 2, 4, 8, 16, 32)
STEPS = 101  # points 0..100 of every run, one noise measurement every 10 steps


def study(ratio: float | dict[int, float] = 0.25, fail_from: float | None = 16, kappas=KAPPAS, seeds=(0, 1, 2), *,
          noise: bool = True, scaling: bool = True, late_decay: bool = False,
          extra_rows: list[dict] | None = None) -> StudyData:
    """A linear-scaling path whose κ ≥ ``fail_from`` are clearly worse (+0.2 on test_loss, ≈ 30% of the base), and
    whose runs carry noise rows with G_t/N_t = ``ratio`` at B (a dict gives it per seed) at steps 10, 20, …, 100,
    plus a step-0 row at ratio 5 that must be ignored. ``late_decay``: lr_t drops ×10 from step 80 and the rows
    after it carry ratio 50 (outside the base-LR window, so they must be ignored too)."""
    runs, points, diags = [], [], []
    for kappa in kappas:
        for seed in seeds:
            rid = len(runs) + 1
            runs.append({"run_id": rid, "trial_id": f"t{rid}", "status": "completed", "optimizer": "sgd",
                         "batch_size": B0 * kappa, "lr": LR0 * kappa, "weight_decay": 0.0, "svag_l": 1.0,
                         "seed": seed, "momentum": 0.0, "beta1": None, "beta2": None, "eps": None,
                         "scaling_rule": "linear" if scaling else None, "kappa": float(kappa) if scaling else None,
                         "config": {"scaling": {"rule": "linear", "kappa": kappa, "base_batch_size": B0,
                                                "base_lr": LR0}} if scaling else {}})
            rng = np.random.default_rng([kappa, seed])
            t = np.linspace(0.0, 10.0, STEPS)
            worse = 0.2 if fail_from is not None and kappa >= fail_from else 0.0
            y = 0.5 + 0.5 * np.exp(-t) + worse + 0.004 * rng.standard_normal(STEPS)
            lr_t = np.where((np.arange(STEPS) >= 80) & late_decay, LR0 * kappa / 10, LR0 * kappa)
            points += [{"run_id": rid, "step": i, "sde_time": t[i], "epoch": t[i], "test_loss": y[i],
                        "train_loss": y[i], "test_acc": np.nan, "lr_t": lr_t[i]} for i in range(STEPS)]
            if not noise:
                continue
            r = ratio[seed] if isinstance(ratio, dict) else ratio
            for step in range(0, STEPS, 10):
                r_b = 5.0 if step == 0 else 50.0 if late_decay and step >= 80 else r * kappa  # G/N ∝ B under LSR
                n_t = 0.8 / kappa * (1 + 0.05 * rng.standard_normal())
                diags.append({"run_id": rid, "step": step, "kind": "noise", "value": r_b, "summary.g_t": r_b * n_t,
                              "summary.n_t": n_t, "summary.ratio": r_b, "seed": seed, "kappa": float(kappa)})
    diags += extra_rows or []
    diag = pd.DataFrame(diags) if diags else pd.DataFrame(columns=["run_id", "step", "kind", "value"])
    return StudyData("constructed", {}, pd.DataFrame(runs), pd.DataFrame(points), diag)


def pooled(v) -> dict:
    return next(e for e in v.evidence if e["what"] == "prediction (pooled)")


def test_confirmed_when_the_prediction_matches_where_lsr_fails():
    # G/N = 0.25 at B0 = 8 → B* = 2·8/0.25 = 64; LSR holds to κ = 8 (B = 64) and fails at κ = 16.
    v = nsr.check(study(ratio=0.25, fail_from=16))
    assert v.verdict == "CONFIRMED", v.summary
    assert pooled(v)["B_star"] == pytest.approx(64, rel=0.06)
    assert v.details["paths"][0]["B_hold"] == 64 and v.details["paths"][0]["B_fail"] == 128
    assert v.statistic == pytest.approx(1.0, rel=0.06)


def test_refuted_when_lsr_holds_far_past_the_prediction():
    v = nsr.check(study(ratio=1.0, fail_from=16))  # B* = 16 < B_hold/2 = 32
    assert v.verdict == "REFUTED", v.summary
    assert "held well past" in v.summary and v.statistic == pytest.approx(0.25, rel=0.06)


def test_refuted_when_lsr_fails_far_before_the_prediction():
    v = nsr.check(study(ratio=0.02, fail_from=4))  # B* = 800 > 2·B_fail = 64
    assert v.verdict == "REFUTED", v.summary
    assert "failed well before" in v.summary


def test_the_window_averages_numerator_and_denominator_separately():
    # Two window rows per run with very different N: mean of ratios ≠ ratio of means (docs/theory.md §2, §9).
    extra, data = [], study(ratio=0.25, fail_from=16, noise=False)
    for rid in data.runs.run_id[data.runs.kappa == 1]:
        extra += [{"run_id": rid, "step": 60, "kind": "noise", "value": 0.1, "summary.g_t": 0.1, "summary.n_t": 1.0},
                  {"run_id": rid, "step": 100, "kind": "noise", "value": 1.0, "summary.g_t": 0.01,
                   "summary.n_t": 0.01}]
    data.diagnostics = pd.DataFrame(extra)
    row = pooled(nsr.check(data))
    assert row["G_over_N_at_B0"] == pytest.approx(0.11 / 1.01)  # not (0.1 + 1.0)/2 = 0.55
    assert row["B_star"] == pytest.approx(2 * B0 * 1.01 / 0.11)


def test_step_zero_and_rows_after_a_decay_are_outside_the_window():
    v = nsr.check(study(ratio=0.25, fail_from=16, late_decay=True))
    steps = v.details["paths"][0]["window_steps"]
    assert 0 not in steps and max(steps) == 70 and min(steps) >= 35  # last half of steps 10…70 at the base LR
    assert v.verdict == "CONFIRMED", v.summary  # the ratio-5 and ratio-50 rows would have moved B* far away


def test_inconclusive_without_noise_diagnostic():
    v = nsr.check(study(noise=False))
    assert v.verdict == "INCONCLUSIVE"
    assert any("diagnostics.noise" in m for m in v.missing)


def test_inconclusive_without_a_scaling_path():
    v = nsr.check(study(scaling=False))
    assert v.verdict == "INCONCLUSIVE"
    assert any("[scaling]" in m for m in v.missing)


def test_inconclusive_when_no_kappa_failed():
    # B* = 400 is within ×2 of B_hold = 256, but with no failure 256 is only a lower bound on the limit
    v = nsr.check(study(ratio=0.04, fail_from=None))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert "lower bound" in v.summary
    assert any("scaling.factors" in m and "larger" in m for m in v.missing)


def test_inconclusive_when_the_bracket_is_too_coarse():
    # LSR holds to B = 16 and fails at B = 256: B* = 64 is within ×2 of neither end
    v = nsr.check(study(ratio=0.25, fail_from=32, kappas=(1, 2, 32)))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert any("κ between 2 and 32" in m for m in v.missing)


def test_inconclusive_when_the_base_seeds_disagree():
    # pooled G/N ≈ (0.2 + 0.2 + 0.02)/3 gives B* ≈ 114 (CONFIRMED: [64, 128) within ×2), seed 2 alone 800.
    v = nsr.check(study(ratio={0: 0.2, 1: 0.2, 2: 0.02}, fail_from=16))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert "disagree" in v.summary
    assert v.details["paths"][0]["seed_calls"] == ["CONFIRMED", "CONFIRMED", "REFUTED"]


def test_figure_draws():
    data = study()
    v = nsr.check(data)
    fig = nsr.figure(data, v)
    assert len(fig.axes) == 2 and fig.axes[0].lines


@pytest.mark.slow
def test_example_spec_is_refuted_as_the_closed_form_says(tmp_path):
    """examples/nsr.toml, reduced (2 seeds, κ ∈ {1, 4, 16, 40}): B* from G/N agrees with the closed form, and LSR
    fails at κη = 2/λ_max, far below B*/2."""
    import tomllib

    from db.engine import open_db
    from sweeper.data.linreg import spectrum
    from sweeper.launch.inline import run_inline
    from sweeper.spec import parse_spec
    from sweeper.theory.linreg import stationary_variances
    from tests.helpers import REPO_ROOT, merged

    raw = tomllib.loads((REPO_ROOT / "examples" / "nsr.toml").read_text())
    spec = parse_spec(merged(raw, {"seeds": [0, 1], "scaling": {"factors": [1, 4, 16, 40]}}))
    engine = open_db(f"sqlite:///{tmp_path / 'nsr.db'}", create=True)
    run_inline(spec, engine)
    v = nsr.check(StudyData.load(engine, spec.name))
    assert v.verdict == "REFUTED", v.summary
    # closed form: stationary G = Σ h² s, N = tr Σ(S)/B with Σ(S) = H S H + tr(HS) H + σ² H (docs/theory.md §8)
    h = spectrum(16, 10.0).numpy()
    s = stationary_variances(h, 1.0, LR0, B0)
    g, n = h**2 @ s, (h**2 @ s + (h @ s) * h.sum() + h.sum()) / B0
    assert pooled(v)["G_over_N_at_B0"] == pytest.approx(g / n, rel=0.5)
    assert v.details["paths"][0]["B_fail"] == 320 and pooled(v)["B_star"] > 2 * 320
    assert math.isfinite(v.statistic)
