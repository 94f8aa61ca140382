"""Tests for the linreg data set and its closed-form population loss."""

import math

import pytest
import torch

from sweeper.data import build_dataset
from sweeper.data.linreg import sample, spectrum

CPU = torch.device("cpu")


def test_same_seed_same_data_and_shapes() -> None:
    a = build_dataset("linreg", CPU, torch.float64, n_train=256, n_test=64, dim=5, seed=3)
    b = build_dataset("linreg", CPU, torch.float64, n_train=256, n_test=64, dim=5, seed=3)
    c = build_dataset("linreg", CPU, torch.float64, n_train=256, n_test=64, dim=5, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.meta["w_star"], b.meta["w_star"])
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (256, 5) and a.y_train.shape == (256,) and a.x_test.shape == (64, 5)
    assert a.task == "regression" and a.num_outputs == 1 and a.input_shape == (5,) and a.n_train == 256
    f32 = build_dataset("linreg", CPU, torch.float32, n_train=256, n_test=64, dim=5, seed=3)
    assert f32.x_train.dtype == torch.float32 and f32.y_train.dtype == torch.float32
    torch.testing.assert_close(f32.x_train, a.x_train.float())


def test_spectrum() -> None:
    h = spectrum(5, 100.0)
    torch.testing.assert_close(h, torch.tensor([1.0, 100**-0.25, 0.1, 100**-0.75, 0.01], dtype=torch.float64))
    assert spectrum(1, 10.0).tolist() == [1.0]


def test_empirical_covariance_matches_h() -> None:
    d = build_dataset("linreg", CPU, torch.float64, n_train=200_000, n_test=1, dim=6, condition=20.0)
    x = d.x_train
    cov = x.T @ x / x.shape[0]
    torch.testing.assert_close(cov, torch.diag(d.meta["h"]), atol=0.015, rtol=0.0)
    assert x.mean(0).abs().max() < 0.01


def test_w_star_scale() -> None:
    norms = [float(build_dataset("linreg", CPU, torch.float64, n_train=1, n_test=1, dim=64, seed=s)
                   .meta["w_star"].square().sum()) for s in range(8)]
    # each ~ chi2_64 / 64: mean 1, sd 0.18; the average of 8 has sd 0.06
    assert 0.8 < sum(norms) / len(norms) < 1.2


def test_exact_loss_at_optimum_is_half_noise_squared() -> None:
    d = build_dataset("linreg", CPU, torch.float32, n_train=8, n_test=8, dim=4, noise=0.7)
    assert d.exact_test_loss is not None
    assert d.exact_test_loss(d.meta["w_star"]) == pytest.approx(0.5 * 0.49, rel=1e-12)
    assert d.exact_test_loss(d.meta["w_star"].float()) == pytest.approx(0.5 * 0.49, rel=1e-6)


def test_exact_loss_matches_monte_carlo() -> None:
    d = build_dataset("linreg", CPU, torch.float64, n_train=8, n_test=8, dim=8, noise=0.5, condition=50.0)
    h, w_star, noise = d.meta["h"], d.meta["w_star"], d.meta["noise"]
    gen = torch.Generator().manual_seed(123)
    w = w_star + torch.randn(8, generator=gen, dtype=torch.float64)
    x, y = sample(400_000, h, w_star, noise, gen)
    sq = 0.5 * (x @ w - y) ** 2
    mc, se = float(sq.mean()), float(sq.std()) / math.sqrt(sq.numel())
    exact = d.exact_test_loss(w)
    assert abs(mc - exact) < 4 * se, (mc, exact, se)
    assert exact > 0.5 * noise**2 + 0.05  # w is really away from the optimum


def test_least_squares_test_loss_close_to_theory() -> None:
    # For Gaussian design, E[test loss of OLS] = ½σ²(1 + d/(N − d − 1)) ≈ ½σ²(1 + d/N).
    n, dim, noise = 1024, 16, 1.0
    ratios = []
    for seed in range(6):
        d = build_dataset("linreg", CPU, torch.float64, n_train=n, n_test=1, dim=dim, noise=noise, seed=seed)
        w = torch.linalg.lstsq(d.x_train, d.y_train.unsqueeze(1)).solution.squeeze(1)
        excess = d.exact_test_loss(w) / (0.5 * noise**2) - 1.0
        ratios.append(excess / (dim / (n - dim - 1)))
    mean_ratio = sum(ratios) / len(ratios)  # ~ chi2_96 / 96: sd ≈ 0.14
    assert 0.6 < mean_ratio < 1.4, ratios


def test_hetero_noise_matches_its_population_loss_and_breaks_commutation():
    """hetero > 0: the closed-form loss at w* equals the empirical one, and Σ(w*) does not commute with H."""
    import torch

    from sweeper.data import build_dataset

    data = build_dataset("linreg", "cpu", torch.float64, n_train=200000, dim=4, condition=4.0, noise=1.0, hetero=2.0)
    w_star, h = data.meta["w_star"], data.meta["h"]
    x, y = data.x_train, data.y_train
    empirical = 0.5 * ((x @ w_star - y) ** 2).mean().item()
    assert abs(empirical / data.exact_test_loss(w_star) - 1) < 0.02
    g = x * (x @ w_star - y)[:, None]  # per-example gradients at w*
    sigma = torch.cov(g.T)
    commutator = torch.diag(h) @ sigma - sigma @ torch.diag(h)
    assert torch.linalg.matrix_norm(commutator) > 0.08 * torch.linalg.matrix_norm(sigma)
    plain = build_dataset("linreg", "cpu", torch.float64, n_train=200000, dim=4, condition=4.0, noise=1.0)
    g0 = plain.x_train * (plain.x_train @ plain.meta["w_star"] - plain.y_train)[:, None]
    s0 = torch.cov(g0.T)
    assert torch.linalg.matrix_norm(torch.diag(h) @ s0 - s0 @ torch.diag(h)) < 0.02 * torch.linalg.matrix_norm(s0)
