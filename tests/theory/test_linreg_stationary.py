"""Closed form on linreg (docs/theory.md §8): the stationary test loss of SGD and SVAG(l) matches the discrete-time
second-moment recursion, and SVAG approaches the SDE (Ornstein–Uhlenbeck) value as l grows."""

import numpy as np
import pytest
import torch

from sweeper.reporter import ListReporter
from sweeper.theory.linreg import stationary_excess_loss, stationary_variances
from sweeper.train.loop import Trial
from tests.helpers import make_trial

DATA = {"name": "linreg", "n_train": 16384, "dim": 8, "condition": 4.0, "noise": 1.0}


def measured_excess(lr: float, batch_size: int, svag_l: float, steps: int, burn_in: int) -> tuple[float, float]:
    """(mean test loss above the training minimiser's, its standard error) over the stationary part of a run."""
    config = make_trial(
        data=DATA, sweep={"batch_size": [batch_size], "lr": [lr], "svag_l": [svag_l]}, budget={"steps": steps},
        log={"every_epochs": None, "every_steps": 4, "eval_samples": 1, "measure_every": 10**6}, precision="float64",
    )
    trial = Trial(config)
    points = trial.run(ListReporter()).points
    x, y = trial.data.x_train, trial.data.y_train
    w_hat = torch.linalg.lstsq(x, y[:, None]).solution.reshape(-1)  # the stationary mean under sampling from x
    losses = np.array([p["test_loss"] for p in points if p["effective_step"] >= burn_in])
    blocks = losses[: len(losses) // 20 * 20].reshape(20, -1).mean(1)  # batch means: autocorrelation-robust SE
    return losses.mean() - trial.data.exact_test_loss(w_hat), blocks.std(ddof=1) / np.sqrt(20)


def h_of(dim: int, condition: float) -> np.ndarray:
    return condition ** (-np.arange(dim) / (dim - 1))


def test_recursion_reduces_to_the_lyapunov_equation_in_the_sde_limit():
    h, lr, b = h_of(8, 4.0), 0.3, 8
    s = stationary_variances(h, 1.0, lr, b, np.inf)
    # H S + S H = (η/B)(H S H + tr(HS) H + σ² H), diagonal
    np.testing.assert_allclose(2 * h * s, lr / b * (h**2 * s + h * (h @ s) + h), rtol=1e-12)
    assert abs(stationary_excess_loss(h, 1.0, lr, b, 1e6) / stationary_excess_loss(h, 1.0, lr, b, np.inf) - 1) < 1e-4
    with pytest.raises(ValueError, match="no stationary state"):
        stationary_variances(h, 1.0, 2.5, b)


@pytest.mark.slow
def test_sgd_at_small_lr_matches_the_ornstein_uhlenbeck_prediction():
    h, lr, b = h_of(8, 4.0), 0.1, 8
    excess, se = measured_excess(lr, b, 1, steps=24000, burn_in=400)
    sde = stationary_excess_loss(h, 1.0, lr, b, np.inf)
    assert abs(excess / sde - 1) < 0.10, (excess, sde, se)


@pytest.mark.slow
def test_svag_moves_toward_the_sde_value_as_the_discrete_prediction_says():
    h, lr, b = h_of(8, 4.0), 0.6, 8
    sde = stationary_excess_loss(h, 1.0, lr, b, np.inf)
    measured = {}
    for l, steps in ((1, 8000), (4, 8000), (16, 4000)):
        excess, se = measured_excess(lr, b, l, steps=steps, burn_in=200)
        predicted = stationary_excess_loss(h, 1.0, lr, b, l)
        assert abs(excess / predicted - 1) < 0.10, (l, excess, predicted, se)
        measured[l] = (excess, se)
    (e1, s1), (e4, s4), (e16, _) = measured[1], measured[4], measured[16]
    assert e1 - e4 > 3 * np.hypot(s1, s4), "SGD (l=1) is not separated from SVAG(4) at this η"
    assert abs(e16 - sde) < abs(e1 - sde) / 3  # most of the way to the SDE value
