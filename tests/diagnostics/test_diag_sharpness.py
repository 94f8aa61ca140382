"""Sharpness: power iteration on Hessian-vector products against exact Hessians (THEORY.md §6, §9)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from sweeper.diagnostics import hessian_trace, top_hessian_eigenvalue
from sweeper.train.metrics import example_losses


def explicit_hessian(model, x, y, task):
    """The full Hessian (d, d) of the mean loss, via torch.autograd.functional.hessian on the flat parameters."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for n, p in model.named_parameters() if p.requires_grad]
    flat0 = torch.cat([p.detach().reshape(-1) for n, p in model.named_parameters() if p.requires_grad])

    def loss(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[i : i + s.numel()].reshape(s)
            i += s.numel()
        return example_losses(functional_call(model, parts, (x,)), y, task).mean()

    return torch.autograd.functional.hessian(loss, flat0)


def test_linreg_hessian_is_empirical_second_moment(linreg):
    x, y = linreg.sample((256,), torch.Generator().manual_seed(0))
    model = nn.Linear(linreg.d, 1, bias=False).double()
    h = (x.T @ x / len(x)).numpy()  # ½MSE: H = XᵀX/n exactly, at any w
    res = top_hessian_eigenvalue(model, x, y, "regression")
    assert res.converged and not res.shifted and res.tol == 1e-4
    assert res.eigenvalue == pytest.approx(np.linalg.eigvalsh(h)[-1], rel=1e-3)
    tr = hessian_trace(model, x, y, "regression", n_samples=200, seed=1)
    assert abs(tr.mean - np.trace(h)) < 3 * tr.stderr and tr.stderr > 0


def test_small_mlp_against_explicit_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    y = torch.sin(x.sum(1)) + 0.3 * torch.randn(64, dtype=torch.float64)
    hess = explicit_hessian(model, x, y, "regression").numpy()
    assert hess.shape == (21, 21)
    eig = np.linalg.eigvalsh(hess)
    res = top_hessian_eigenvalue(model, x, y, "regression", seed=3)
    assert res.converged
    assert res.eigenvalue == pytest.approx(eig[-1], rel=1e-3)
    tr = hessian_trace(model, x, y, "regression", n_samples=300, seed=2)
    assert abs(tr.mean - np.trace(hess)) < 3 * tr.stderr


def test_classification_mlp_bn_eval_mode_and_state_restored():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        model[1].running_mean.normal_()
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randint(0, 3, (32,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = top_hessian_eigenvalue(model, x, y, "classification", tol=1e-6)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()
    eig = np.linalg.eigvalsh(explicit_hessian(model, x, y, "classification").numpy())
    assert res.eigenvalue == pytest.approx(eig[-1], rel=1e-3)


class Saddle(nn.Module):
    """Output f = ½ wᵀMw at w = 0, target 1: the loss ½(f − 1)² has Hessian −M there (∇f = 0)."""

    def __init__(self, m: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(m.shape[0], dtype=m.dtype))
        self.register_buffer("m", m)

    def forward(self, x):
        return (0.5 * self.w @ self.m @ self.w).expand(x.shape[0], 1)


def test_negative_dominant_eigenvalue_still_returns_top_algebraic():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    hess_eig = torch.tensor([-5.0, -1.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    model = Saddle(-(q @ torch.diag(hess_eig) @ q.T))
    x, y = torch.zeros(4, 1, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    res = top_hessian_eigenvalue(model, x, y, "regression")
    assert res.largest_magnitude == pytest.approx(-5.0, rel=1e-3)
    assert res.shifted and res.converged
    assert res.eigenvalue == pytest.approx(2.0, rel=1e-3)
    plain = top_hessian_eigenvalue(model, x, y, "regression", algebraic=False)
    assert plain.eigenvalue == pytest.approx(-5.0, rel=1e-3)
    tr = hessian_trace(model, x, y, "regression", n_samples=200)
    assert abs(tr.mean - float(hess_eig.sum())) < 3 * tr.stderr + 1e-9
