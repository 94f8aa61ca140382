"""``noise-rank`` on constructed covariance diagnostics whose answer is known, plus the example spec."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweeper.checks import noise_rank
from sweeper.checks.base import StudyData

STEPS = (0, 20, 40, 60, 80, 100)  # covariance measured at 0%, 20%, …, 100% of a 100-step run


def study(n_eig_99, d: int = 10_000, n: int = 2048, runs: int = 4) -> StudyData:
    """``runs`` runs with covariance rows at STEPS; ``n_eig_99``: one count for all, a function of (run, step), or
    a per-run list. The rank, PR and eigenvalues are made consistent with it (a flat top block)."""
    run_rows, points, diags = [], [], []
    for i in range(runs):
        rid = i + 1
        run_rows.append({"run_id": rid, "trial_id": f"t{rid}", "status": "completed", "optimizer": "sgd",
                         "batch_size": 32, "lr": 0.05 * (1 + i // 2), "seed": i % 2, "kappa": None})
        points += [{"run_id": rid, "step": s, "epoch": s / 10, "sde_time": s * 0.05} for s in range(101)]
        for step in STEPS:
            k = (n_eig_99(rid, step) if callable(n_eig_99) else n_eig_99[i] if isinstance(n_eig_99, list)
                 else n_eig_99)
            bound = min(n - 1, d)
            diags.append({"run_id": rid, "step": step, "kind": "covariance", "value": min(k + 2, bound) / d,
                          "payload": np.r_[np.ones(min(k, 64)), np.full(max(0, 64 - k), 1e-6)],
                          "summary.n": n, "summary.d": d, "summary.n_eig_99": k, "summary.n_eig_90": int(0.9 * k),
                          "summary.rank": min(k + 2, bound), "summary.rank_bound": bound,
                          "summary.bound_kind": "samples" if n - 1 < d else "dimension",
                          "summary.rank_over_d": min(k + 2, bound) / d,
                          "summary.rank_saturated": min(k + 2, bound) >= n - 1,
                          "summary.participation_ratio": 0.8 * k, "summary.participation_ratio_unbiased": 0.95 * k})
    return StudyData("constructed", {}, pd.DataFrame(run_rows), pd.DataFrame(points), pd.DataFrame(diags))


def test_confirmed_when_99_percent_of_the_trace_sits_in_under_two_percent_of_d():
    v = noise_rank.check(study(50))  # f = 0.005; n − 1 = 2047 ≫ 0.02·d = 200 and 50 < ¼·2047
    assert v.verdict == "CONFIRMED", v.summary
    assert v.statistic == pytest.approx(0.005)
    assert all(e["bound_kind"] == "samples" and not e["sample_limited"] for e in v.evidence)


def test_refuted_when_the_covariance_is_full_rank():
    v = noise_rank.check(study(60, d=64, n=512))  # linear regression: Σ = σ²H, 60 of 64 (bound: dimension)
    assert v.verdict == "REFUTED", v.summary
    assert v.statistic == pytest.approx(60 / 64) and v.details["bound_kinds"] == ["dimension"]


def test_a_high_value_refutes_even_when_the_samples_limit_it():
    v = noise_rank.check(study(900, d=10_000, n=1024))  # f = 0.09 > τ, sample-limited (biased low) — still refutes
    assert v.verdict == "REFUTED", v.summary
    assert all(e["sample_limited"] for e in v.evidence) and "biased low" in v.summary


def test_a_sample_saturated_count_is_never_called_low_rank():
    # 480 of n − 1 = 511 directions: the count is the sample size, not the model; (n − 1)/d = 0.5% < τ anyway
    v = noise_rank.check(study(480, d=100_000, n=512))
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert v.statistic < 0.02 and any("diagnostics.covariance.samples" in m for m in v.missing)


def test_a_count_using_much_of_the_sample_directions_is_not_low_rank_either():
    # f = 150/10000 = 1.5% < τ and the sample bound (511/d = 5%) could exceed τ, but 150 > ¼·511
    v = noise_rank.check(study(150, d=10_000, n=512))
    assert v.verdict == "INCONCLUSIVE", v.summary
    need = int(v.missing[0].split("≥ ")[1].split()[0])
    assert need >= 4 * 150 and "full_dataset" in v.missing[0]


def test_inconclusive_without_covariance_diagnostic():
    data = study(50)
    data.diagnostics = data.diagnostics[data.diagnostics.kind != "covariance"]
    v = noise_rank.check(data)
    assert v.verdict == "INCONCLUSIVE" and any("[diagnostics.covariance]" in m for m in v.missing)


def test_inconclusive_when_runs_disagree():
    v = noise_rank.check(study([50, 60, 70, 900]))  # median 0.0065 ≤ τ but one run at 0.09
    assert v.verdict == "INCONCLUSIVE", v.summary
    assert "exceed" in v.summary and any("replicates" in m for m in v.missing)


def test_inconclusive_when_d_is_too_small_for_the_threshold():
    v = noise_rank.check(study(1, d=16, n=512))  # rank 1 of 16 is 6% of d: τ = 2% cannot be met by anything
    assert v.verdict == "INCONCLUSIVE" and "larger model" in v.missing[0]


def test_change_with_training_time_is_reported_early_against_late():
    # 100 eigenvalues at 20% of training, halving to 50 at the end
    v = noise_rank.check(study(lambda rid, step: 100 if step <= 20 else 80 if step < 100 else 50))
    assert v.verdict == "CONFIRMED"
    row = v.evidence[0]
    assert row["progress_early"] == pytest.approx(0.2) and row["f99_early"] == pytest.approx(0.01)
    assert row["f99_late_over_early"] == pytest.approx(0.5) and v.details["time_change_median"] == pytest.approx(0.5)
    assert "late/early f" in v.summary


def test_tolerance_sets_the_threshold():
    assert noise_rank.check(study(50), tolerance=0.001).verdict == "REFUTED"


def test_figure_draws():
    data = study(50)
    v = noise_rank.check(data)
    fig = noise_rank.figure(data, v)
    assert len(fig.axes) == 2 and fig.axes[1].lines


@pytest.mark.slow
def test_example_spec_is_refuted_as_the_closed_form_says(tmp_path):
    """examples/noise-rank.toml: linear regression's gradient noise Σ ≈ σ²H is full rank (62 of 64 eigenvalues
    for 99% of tr H), measured with n = 512 > d (the dimension bound), unchanged from 20% of training to the end."""
    from db.engine import open_db
    from sweeper.data.linreg import spectrum
    from sweeper.launch.inline import run_inline
    from sweeper.spec import load_spec
    from tests.helpers import REPO_ROOT

    spec = load_spec(REPO_ROOT / "examples" / "noise-rank.toml")
    engine = open_db(f"sqlite:///{tmp_path / 'rank.db'}", create=True)
    run_inline(spec, engine)
    v = noise_rank.check(StudyData.load(engine, spec.name))
    assert v.verdict == "REFUTED", v.summary
    h = spectrum(64, 10.0).numpy()
    expected = int(np.searchsorted(np.cumsum(h) / h.sum(), 0.99) + 1)  # 62
    assert all(abs(e["n_eig_99"] - expected) <= 4 and e["bound_kind"] == "dimension" for e in v.evidence)
    assert all(math.isclose(e["f99_late_over_early"], 1.0, abs_tol=0.1) for e in v.evidence)
