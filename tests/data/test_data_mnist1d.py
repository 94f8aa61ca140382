"""Tests for the MNIST-1D data set (procedurally generated, no download)."""

import random

import numpy as np
import torch

from sweeper.data import build_dataset

CPU = torch.device("cpu")


def test_shapes_labels_determinism_and_no_global_rng_side_effect() -> None:
    np.random.seed(1234)
    random.seed(99)
    np_before, py_before = np.random.get_state(), random.getstate()
    a = build_dataset("mnist1d", CPU, torch.float32, n_train=203, n_test=51, seed=7)
    np_after, py_after = np.random.get_state(), random.getstate()
    assert all(np.array_equal(u, v) for u, v in zip(np_before, np_after, strict=True))
    assert py_before == py_after

    assert a.x_train.shape == (203, 1, 40) and a.x_test.shape == (51, 1, 40)
    assert a.y_train.shape == (203,) and a.y_test.shape == (51,)
    assert a.y_train.dtype == torch.long and a.x_train.dtype == torch.float32
    assert a.input_shape == (1, 40) and a.num_outputs == 10 and a.task == "classification"
    assert int(a.y_train.min()) >= 0 and int(a.y_train.max()) <= 9
    assert len(torch.unique(a.y_train)) == 10

    b = build_dataset("mnist1d", CPU, torch.float64, n_train=203, n_test=51, seed=7)
    torch.testing.assert_close(b.x_train.float(), a.x_train)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.y_test, b.y_test)
    c = build_dataset("mnist1d", CPU, torch.float32, n_train=203, n_test=51, seed=8)
    assert not torch.equal(a.x_train, c.x_train)
