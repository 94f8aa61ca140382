"""SVAG: coefficients and the first two moments of the mixed gradient (docs/theory.md §1)."""

import math

import pytest
import torch

from sweeper.train.loop import Trial
from sweeper.train.svag import adaptive_hyperparameters, coefficients
from tests.helpers import make_trial


@pytest.mark.parametrize("l", [1, 2, 4, 16, 3.5])
def test_coefficients_sum_to_one_and_square_sum_to_l(l):
    c1, c2 = coefficients(l)
    assert math.isclose(c1 + c2, 1.0) and math.isclose(c1**2 + c2**2, l)


def test_adaptive_rescaling():
    lr, b1, b2, eps = adaptive_hyperparameters(1e-3, 0.9, 0.999, 1e-8, 4)
    assert math.isclose(lr, 2.5e-4) and math.isclose(1 - b1, 0.1 / 16) and math.isclose(1 - b2, 0.001 / 16)
    assert math.isclose(eps, 4e-8)
    assert adaptive_hyperparameters(1e-3, None, 0.999, 1e-8, 1) == (1e-3, None, 0.999, 1e-8)


@pytest.mark.parametrize("l", [1, 4])
def test_mixed_gradient_has_full_mean_and_l_times_noise(l):
    """Over many draws at fixed w: E[g] = ∇L and Cov[g] = l·Σ/B, Σ from the per-example gradients."""
    b, draws = 4, 20000
    config = make_trial(
        data={"name": "linreg", "n_train": 256, "dim": 3, "condition": 3.0, "noise": 0.5},
        sweep={"batch_size": [b], "svag_l": [l]}, precision="float64",
    )
    trial = Trial(config)
    w = trial.trainable[0]
    with torch.no_grad():
        w.copy_(torch.tensor([[0.7, -0.4, 0.2]], dtype=torch.float64))
    x, y = trial.data.x_train, trial.data.y_train
    per_example = x * (x @ w.detach().reshape(-1) - y)[:, None]  # ∇ of ½(x·w − y)², shape (N, d)
    full = per_example.mean(0)
    sigma = torch.cov(per_example.T, correction=0)
    grads = torch.stack([torch.autograd.grad(trial.minibatch_loss(), w)[0].reshape(-1) for _ in range(draws)])
    expected_cov = l * sigma / b
    standard_error = (expected_cov.diagonal() / draws).sqrt()
    assert ((grads.mean(0) - full).abs() <= 4.5 * standard_error).all()
    cov = torch.cov(grads.T)
    rel = torch.linalg.matrix_norm(cov - expected_cov) / torch.linalg.matrix_norm(expected_cov)
    assert rel < 0.06, f"covariance off by {rel:.3f} relative"
    # and not the plain-SGD covariance when l > 1
    if l > 1:
        assert torch.linalg.matrix_norm(cov - sigma / b) / torch.linalg.matrix_norm(sigma / b) > 1.0
