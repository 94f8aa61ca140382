"""Covariance spectrum: known rank on both paths, unbiased participation ratio, saturation flag, and the
analytic per-example gradient covariance of linear regression (docs/theory.md §5, §8, §9)."""

import numpy as np
import pytest
import torch
from torch import nn

from sweeper.diagnostics import centred_covariance, covariance_spectrum, per_example_grads
from sweeper.diagnostics.covariance import unbiased_trace_moments


def low_rank_grads(n: int, d: int, r: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, np.ndarray]:
    """G = Z A + μ with Z (n, r) Gaussian, A (r, d) of rank r with singular values 1 … 0.3, and the exact
    eigenvalues (descending) of the sample covariance Aᵀ Ŝ_Z A that G must reproduce."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, r, generator=gen, dtype=torch.float64))
    a = torch.diag(torch.linspace(1.0, 0.3, r, dtype=torch.float64)) @ q.T  # (r, d), rank r
    z = torch.randn(n, r, generator=gen, dtype=torch.float64)
    mu = 5.0 * torch.randn(d, generator=gen, dtype=torch.float64)  # an offset the centring must remove
    s_z = np.cov(z.numpy(), rowvar=False)
    exact = np.sort(np.linalg.eigvalsh(a.numpy().T @ s_z @ a.numpy()))[::-1]
    return (z @ a + mu).to(dtype), exact


@pytest.mark.parametrize(("n", "d", "path"), [(40, 500, "gram"), (600, 30, "covariance")])
def test_known_rank_and_eigenvalues(n, d, path):
    r = 12
    g, exact = low_rank_grads(n, d, r, seed=n)
    s = covariance_spectrum(g, top_k=20)
    assert s.path == path
    assert s.rank == r and not s.rank_saturated
    assert s.bound_kind == ("samples" if n - 1 < d else "dimension")
    assert s.rank_over_d == pytest.approx(r / d) and s.rank_over_bound == pytest.approx(r / min(n - 1, d))
    np.testing.assert_allclose(s.eigenvalues[:r], exact[:r], rtol=1e-9)
    assert np.all(s.eigenvalues[r:] < 1e-9 * exact[0])
    assert s.trace == pytest.approx(exact.sum(), rel=1e-9)
    assert s.participation_ratio == pytest.approx(exact.sum() ** 2 / np.square(exact).sum(), rel=1e-9)
    cum = np.cumsum(exact[:r]) / exact.sum()
    assert s.n_eig_90 == int(np.argmax(cum >= 0.9)) + 1 and s.n_eig_99 == int(np.argmax(cum >= 0.99)) + 1
    # float32 input (as per-example gradients usually are): same rank at the λ_max·d·ε_float32 threshold
    s32 = covariance_spectrum(g.float())
    assert s32.rank == r
    np.testing.assert_allclose(s32.eigenvalues[:r], exact[:r], rtol=1e-3)


def test_gram_and_covariance_paths_agree():
    g, _ = low_rank_grads(50, 50, 50, seed=3)  # full rank; d = n → covariance path, d = n + 1 → gram path
    wide = torch.cat([g, torch.zeros(50, 1, dtype=g.dtype)], dim=1)
    a, b = covariance_spectrum(g), covariance_spectrum(wide)
    assert (a.path, b.path) == ("covariance", "gram")
    np.testing.assert_allclose(a.eigenvalues[:49], b.eigenvalues[:49], rtol=1e-8)
    assert a.participation_ratio_unbiased == pytest.approx(b.participation_ratio_unbiased, rel=1e-8)


def test_rank_saturated_when_samples_limit_it():
    g, _ = low_rank_grads(10, 200, 30, seed=1)  # n − 1 = 9 < true rank 30
    s = covariance_spectrum(g)
    assert s.rank == 9 and s.rank_saturated and s.bound_kind == "samples" and s.rank_over_bound == 1.0


def _mean_prs(spectrum: np.ndarray, n: int, repeats: int, seed: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.as_tensor(np.sqrt(spectrum))
    plug, unb = [], []
    for _ in range(repeats):
        s = covariance_spectrum(torch.randn(n, len(spectrum), generator=gen, dtype=torch.float64) * scale + 1.0)
        plug.append(s.participation_ratio)
        unb.append(s.participation_ratio_unbiased)
    return float(np.mean(plug)), float(np.mean(unb))


@pytest.mark.parametrize("kind", ["isotropic", "exponential"])
def test_unbiased_participation_ratio_at_small_n(kind):
    spectrum = np.ones(50) if kind == "isotropic" else np.exp(-np.arange(300) / 25.0)
    true_pr = spectrum.sum() ** 2 / np.square(spectrum).sum()  # 50 and ≈ 50
    plug, unb = _mean_prs(spectrum, n=16, repeats=600, seed=7)
    assert plug < 0.35 * true_pr  # docs/theory.md §9: ≈ 11 for true PR 50 at n = 16
    assert unb == pytest.approx(true_pr, rel=0.10)


def test_unbiased_trace_moments_match_population():
    spectrum = np.linspace(2.0, 0.1, 40)
    scale = torch.as_tensor(np.sqrt(spectrum))
    gen = torch.Generator().manual_seed(11)
    samples = [torch.randn(8, 40, generator=gen, dtype=torch.float64) * scale for _ in range(3000)]
    est = np.array([unbiased_trace_moments(g) for g in samples])  # n = 8: plug-in would be far off
    mean, se = est.mean(0), est.std(0) / np.sqrt(len(est))
    truth = np.array([spectrum.sum() ** 2, np.square(spectrum).sum()])
    assert np.all(np.abs(mean - truth) < 4 * se), (mean, truth, se)


def test_linreg_per_example_covariance_matches_closed_form(linreg):
    x, y = linreg.sample((20000,), torch.Generator().manual_seed(0))
    model = nn.Linear(linreg.d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(linreg.w[None])
    g = per_example_grads(model, x, y, "regression", chunk=4096)
    torch.testing.assert_close(g, linreg.example_grads(x, y), rtol=1e-12, atol=1e-12)
    truth = linreg.sigma_matrix()
    d_hat = centred_covariance(g)
    assert float((d_hat - truth).norm() / truth.norm()) < 0.05
    s = covariance_spectrum(g)
    assert s.trace == pytest.approx(float(truth.trace()), rel=0.04)
    assert s.eigenvalues[0] == pytest.approx(float(torch.linalg.eigvalsh(truth)[-1]), rel=0.05)
    true_pr = float(truth.trace() ** 2 / (truth @ truth).trace())
    assert s.participation_ratio == pytest.approx(true_pr, rel=0.03)
    assert s.rank == linreg.d and s.bound_kind == "dimension" and not s.rank_saturated
