"""MNIST-1D: an MLP and a CNN trained by a real trial learn far above chance (10%) within a few epochs.

Published MNIST-1D test accuracies at full training: MLP ≈ 68%, CNN ≈ 94% (Greydanus 2020).
"""

import pytest

from sweeper.reporter import ListReporter
from sweeper.train.loop import run_trial
from tests.helpers import make_trial


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, optimizer, lr, floor",
    [
        ({"name": "mlp", "width": 256, "depth": 2}, {"name": "adam"}, 2e-3, 0.50),
        ({"name": "cnn", "width": 32, "depth": 3, "norm": "bn"}, {"name": "sgd", "momentum": 0.9}, 0.05, 0.85),
    ],
)
def test_mnist1d_learns(model, optimizer, lr, floor):
    config = make_trial(
        data={"name": "mnist1d"}, model=model, optimizer=optimizer, sweep={"batch_size": [64], "lr": [lr]},
        budget={"epochs": 10}, log={"every_epochs": 5, "eval_samples": 0},
    )
    points = run_trial(config, ListReporter()).points
    assert points[0]["test_acc"] < 0.2
    assert points[-1]["test_acc"] >= floor, points[-1]
    assert points[-1]["train_loss"] < points[0]["train_loss"] / 2
