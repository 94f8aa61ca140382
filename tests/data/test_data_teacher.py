"""Tests for the teacher–student classification data set."""

import torch

from sweeper.data import build_dataset

CPU = torch.device("cpu")


def test_shapes_and_label_range() -> None:
    d = build_dataset("teacher", CPU, torch.float32, n_train=1000, n_test=300, dim=12, classes=7)
    assert d.x_train.shape == (1000, 12) and d.x_test.shape == (300, 12)
    assert d.y_train.shape == (1000,) and d.y_test.shape == (300,)
    assert d.y_train.dtype == torch.long and d.x_train.dtype == torch.float32
    assert d.task == "classification" and d.num_outputs == 7 and d.input_shape == (12,)
    assert int(d.y_train.min()) >= 0 and int(d.y_train.max()) < 7


def test_deterministic_for_seed() -> None:
    a = build_dataset("teacher", CPU, torch.float64, n_train=200, n_test=50, seed=5)
    b = build_dataset("teacher", CPU, torch.float64, n_train=200, n_test=50, seed=5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.y_test, b.y_test)


def test_classes_balanced_ish() -> None:
    for seed in range(3):
        for classes, dim, width in [(10, 32, 64), (10, 2, 8), (3, 4, 4)]:
            d = build_dataset("teacher", CPU, torch.float32, n_train=4000, n_test=2000, classes=classes,
                              dim=dim, teacher_width=width, seed=seed)
            for y, n in ((d.y_train, 4000), (d.y_test, 2000)):
                share = torch.bincount(y, minlength=classes).float() * classes / n
                assert float(share.min()) > 0.6 and float(share.max()) < 1.4, (classes, dim, seed, share)


def test_label_noise_fraction() -> None:
    n, k, p = 20000, 10, 0.3
    clean = build_dataset("teacher", CPU, torch.float32, n_train=n, n_test=10, classes=k)
    noisy = build_dataset("teacher", CPU, torch.float32, n_train=n, n_test=10, classes=k, label_noise=p)
    assert torch.equal(clean.x_train, noisy.x_train)  # same inputs, only labels differ
    assert torch.equal(noisy.meta["y_train_clean"], clean.y_train)
    assert torch.equal(noisy.y_test, clean.y_test)  # test labels stay clean
    mask_frac = noisy.meta["noise_mask"].float().mean().item()
    changed = (noisy.y_train != clean.y_train).float().mean().item()
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(mask_frac - p) < 4 * sd
    assert abs(changed - p * (1 - 1 / k)) < 4 * sd
    assert torch.equal(noisy.y_train[~noisy.meta["noise_mask"]], clean.y_train[~noisy.meta["noise_mask"]])
