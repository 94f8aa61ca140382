"""``sharpness`` on constructed final sharpness whose trend is known (both signs, flat), plus the example spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import sharpness
from sweeper.checks.base import StudyData
from sweeper.checks.quantities import final_sharpness

BATCHES = (8, 32, 128, 512)


def study(slope: float, sd: float = 0.05, batches=BATCHES, lrs=(0.1,), seeds=(0, 1, 2), *, gen: int = 0,
          lam=None, extra: list[dict] | None = None) -> StudyData:
    """Runs over (lr, B, seed) with final λ_max = 5·(T/T_ref)^slope·exp(sd·ε), T = η/B (or ``lam(lr, B)``);
    each run has a first sharpness row at step 0 (λ = 1, which must not be used) and the final one at step 100."""
    rng = np.random.default_rng(gen)
    runs, diags = [], []
    for lr in lrs:
        for b in batches:
            for seed in seeds:
                rid = len(runs) + 1
                runs.append({"run_id": rid, "trial_id": f"t{rid}", "status": "completed", "optimizer": "sgd",
                             "lr": lr, "batch_size": b, "seed": seed, "svag_l": 1.0})
                final = lam(lr, b) if lam else 5.0 * (lr / b / 1e-3) ** slope * np.exp(sd * rng.standard_normal())
                diags += [{"run_id": rid, "lr": lr, "batch_size": b, "seed": seed, "step": 0, "kind": "sharpness",
                           "value": 1.0},
                          {"run_id": rid, "lr": lr, "batch_size": b, "seed": seed, "step": 100, "kind": "sharpness",
                           "value": final}]
    for row in extra or []:
        rid = len(runs) + 1
        runs.append({"run_id": rid, "trial_id": f"t{rid}", "status": row["status"], "optimizer": "sgd",
                     "lr": row["lr"], "batch_size": row["batch_size"], "seed": 9, "svag_l": 1.0})
        diags.append({"run_id": rid, "lr": row["lr"], "batch_size": row["batch_size"], "seed": 9, "step": 100,
                      "kind": "sharpness", "value": row["value"]})
    return StudyData("constructed", {}, pd.DataFrame(runs), pd.DataFrame(), pd.DataFrame(diags))


def test_confirmed_when_sharpness_falls_with_temperature():
    v = sharpness.check(study(-0.3))
    assert v.verdict == "CONFIRMED", v.summary
    lo, hi = v.details["fit"]["ci"]
    assert hi < 0 and lo < -0.3 < hi and v.statistic == pytest.approx(-0.3, abs=0.05)


def test_refuted_when_sharpness_rises_with_temperature():
    v = sharpness.check(study(+0.3))
    assert v.verdict == "REFUTED", v.summary
    assert v.details["fit"]["ci"][0] > 0


def test_a_flat_trend_is_inconclusive_not_confirmed():
    v = sharpness.check(study(0.0, sd=0.3))
    assert v.verdict == "INCONCLUSIVE", v.summary
    lo, hi = v.details["fit"]["ci"]
    assert lo < 0 < hi and "not a confirmation" in v.summary
    assert any("seeds" in m for m in v.missing)


def test_exact_power_law_gives_the_slope_and_a_tight_interval():
    fit = sharpness.slope_interval(final_sharpness(study(-0.5, sd=0.0))[0])
    assert fit.slope == pytest.approx(-0.5) and fit.ci[1] - fit.ci[0] < 1e-6


def test_the_interval_widens_to_the_seed_bootstrap():
    fit = sharpness.slope_interval(final_sharpness(study(-0.3, sd=0.2, gen=3))[0])
    assert fit.bootstrap_ci is not None
    assert fit.ci[0] == min(fit.regression_ci[0], fit.bootstrap_ci[0])
    assert fit.ci[1] == max(fit.regression_ci[1], fit.bootstrap_ci[1])


def test_uses_the_last_value_and_leaves_out_diverged_and_negative_runs():
    bad = [{"status": "diverged", "lr": 0.1, "batch_size": 8, "value": 1e6},
           {"status": "completed", "lr": 0.1, "batch_size": 512, "value": -3.0}]
    clean, dirty = sharpness.check(study(-0.3)), sharpness.check(study(-0.3, extra=bad))
    assert dirty.statistic == pytest.approx(clean.statistic)  # the step-0 rows (λ = 1) and bad runs are unused
    assert sorted(x["why"][:8] for x in dirty.details["left_out"]) == ["diverged", "last λ_m"]


def test_inconclusive_with_fewer_than_three_temperatures():
    v = sharpness.check(study(-0.3, batches=(8, 512)))
    assert v.verdict == "INCONCLUSIVE" and any("sweep.lr" in m for m in v.missing)


def test_inconclusive_without_sharpness_diagnostic():
    data = study(-0.3)
    data.diagnostics = data.diagnostics[data.diagnostics.kind != "sharpness"]
    v = sharpness.check(data)
    assert v.verdict == "INCONCLUSIVE" and any("[diagnostics.sharpness]" in m for m in v.missing)


def test_edge_of_stability_caveat_when_only_lr_varies():
    # λ_max = 1.9/η at fixed B: a slope of −1 that is the stability bound 2/η, not temperature
    v = sharpness.check(study(0, batches=(32,), lrs=(0.05, 0.1, 0.2, 0.4), lam=lambda lr, b: 1.9 / lr))
    assert v.verdict == "CONFIRMED" and v.statistic == pytest.approx(-1.0)
    assert "edge of stability" in v.summary
    assert "edge of stability" not in sharpness.check(study(-0.3)).summary


def test_figure_draws():
    data = study(-0.3)
    v = sharpness.check(data)
    fig = sharpness.figure(data, v)
    assert fig.axes[0].lines


@pytest.mark.slow
def test_example_spec_is_confirmed(tmp_path):
    """examples/sharpness.toml with half its SDE time (t = 100): an MLP on MNIST-1D, B = 8 … 512 at η = 0.1."""
    import tomllib

    from db.engine import open_db
    from sweeper.launch.inline import run_inline
    from sweeper.spec import parse_spec
    from tests.helpers import REPO_ROOT, merged

    raw = tomllib.loads((REPO_ROOT / "examples" / "sharpness.toml").read_text())
    spec = parse_spec(merged(raw, {"budget": {"sde_time": 100.0}, "log": {"every_steps": 250}}))
    engine = open_db(f"sqlite:///{tmp_path / 'sharpness.db'}", create=True)
    run_inline(spec, engine)
    v = sharpness.check(StudyData.load(engine, spec.name))
    assert v.verdict == "CONFIRMED", v.summary
    assert v.details["fit"]["ci"][1] < 0 and len(v.details["runs"]) == 8
