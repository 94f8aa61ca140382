"""Per-example gradients: exact closed form on linear regression, mean = batch gradient, mode/buffers restored."""

import torch
from torch import nn

from sweeper.diagnostics import batch_grad, per_example_grads


def test_linear_closed_form(linreg):
    gen = torch.Generator().manual_seed(0)
    x, y = linreg.sample((300,), gen)
    model = nn.Linear(linreg.d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(linreg.w[None])
    g = per_example_grads(model, x, y, "regression", chunk=64)
    assert g.shape == (300, linreg.d) and g.dtype == torch.float64
    torch.testing.assert_close(g, linreg.example_grads(x, y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(batch_grad(model, x, y, "regression"), g.mean(0), rtol=1e-12, atol=1e-12)


def test_classification_bn_eval_mode_frozen_params_and_state_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3)).double()
    model[0].bias.requires_grad_(False)  # frozen: excluded from d
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(11, 5, dtype=torch.float64), torch.randint(0, 3, (11,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = per_example_grads(model, x, y, "classification", chunk=4)
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert g.shape == (11, d) == (11, 5 * 7 + 7 + 7 + 7 * 3 + 3)
    assert model.training  # mode restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # eval-mode per-example gradients average to the eval-mode batch gradient, not the train-mode (BN) one
    model.eval()
    torch.testing.assert_close(g.mean(0), batch_grad(model, x, y, "classification"), rtol=1e-10, atol=1e-12)
    model.train()
    assert (g.mean(0) - batch_grad(model, x, y, "classification")).abs().max() > 1e-3
    for k, v in model.state_dict().items():  # train-mode batch_grad does not move the running statistics
        assert torch.equal(v, before[k]), k
    # one example at a time gives the same rows (chunking is invisible)
    torch.testing.assert_close(per_example_grads(model, x[3:4], y[3:4], "classification"), g[3:4])
