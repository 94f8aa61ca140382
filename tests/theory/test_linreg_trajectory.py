"""Closed form on linreg: the expected test-loss trajectory of SGD/SVAG(l) from its initial distribution, against
a Monte-Carlo average of independent chains on fresh Gaussian batches, and against the stationary closed form."""

import numpy as np
import pytest

from sweeper.theory.linreg import expected_loss, stationary_excess_loss

H = np.array([1.0, 0.5, 0.25, 0.1])
W_STAR = np.array([0.6, -0.3, 0.5, 0.2])


def monte_carlo(lr: float, batch: int, svag_l: int, steps: int, chains: int = 4000, seed: int = 0) -> np.ndarray:
    """Mean test loss over independent SVAG(l) chains (two fresh Gaussian batches per step, coefficients
    (1 ± √(2l − 1))/2, step η/l), w0 ~ U(±1/√d)."""
    rng = np.random.default_rng(seed)
    d = len(H)
    w = rng.uniform(-d**-0.5, d**-0.5, (chains, d))
    c1, c2 = (1 + np.sqrt(2 * svag_l - 1)) / 2, (1 - np.sqrt(2 * svag_l - 1)) / 2
    out = np.empty(steps + 1)
    for k in range(steps + 1):
        e = w - W_STAR
        out[k] = 0.5 * (np.mean(np.sum(H * e * e, axis=1)) + 1.0)
        grads = []
        for _ in range(1 if svag_l == 1 else 2):
            x = rng.standard_normal((chains, batch, d)) * np.sqrt(H)
            y = x @ W_STAR + rng.standard_normal((chains, batch))
            r = np.einsum("cbd,cd->cb", x, w) - y
            grads.append(np.einsum("cb,cbd->cd", r, x) / batch)
        g = grads[0] if svag_l == 1 else c1 * grads[0] + c2 * grads[1]
        w = w - lr / svag_l * g
    return out


@pytest.mark.parametrize("lr, batch, svag_l", [(0.3, 4, 1), (0.6, 4, 4)])
def test_expected_loss_matches_monte_carlo(lr, batch, svag_l):
    steps = 60 * svag_l
    exact = expected_loss(H, W_STAR, 1.0 / (3 * len(H)), 1.0, lr, batch, svag_l, steps)
    mc = monte_carlo(lr, batch, svag_l, steps)
    assert np.max(np.abs(mc / exact - 1.0)) < 0.03  # 4000 chains: MC error ≈ 1%


def test_expected_loss_relaxes_to_the_stationary_closed_form():
    exact = expected_loss(H, W_STAR, 1.0 / 12, 1.0, 0.2, 8, 2, 20000)
    assert exact[-1] - 0.5 == pytest.approx(stationary_excess_loss(H, 1.0, 0.2, 8, 2), rel=1e-6)
    assert exact[0] == pytest.approx(0.5 * (np.sum(H * (W_STAR**2 + 1.0 / 12)) + 1.0))


def test_expected_loss_of_an_unstable_step_diverges():
    assert np.isinf(expected_loss(H, W_STAR, 0.1, 1.0, 2.5, 8, 1, 2000)[-1])
