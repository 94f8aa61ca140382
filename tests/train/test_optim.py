"""Stepper.state_dict made from a per-parameter state (a packed member's) equals torch.optim's own state_dict."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sweeper.expand import expand
from sweeper.train.optim import Stepper
from tests.helpers import make_spec


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b) and a.dtype == b.dtype
    else:
        assert a == b


@pytest.mark.parametrize("optimizer", [{"name": "sgd"}, {"name": "sgd", "momentum": 0.9, "nesterov": True},
                                       {"name": "adam"}, {"name": "rmsprop"}])
def test_state_dict_from_a_member_state_equals_the_torch_optimizers(optimizer: dict[str, Any]) -> None:
    config = expand(make_spec(optimizer=optimizer, sweep={"batch_size": [8], "lr": [0.1], "svag_l": [2]}))[0]
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
    stepper = Stepper(config, params)
    for _ in range(2):  # torch's own update, leaving the param group at the constructor's arguments
        for p in params:
            p.grad = torch.randn_like(p)
        stepper.optimizer.step()
    torch_state = stepper.optimizer.state_dict()
    member = [dict(stepper.optimizer.state[p]) for p in params]
    _same(Stepper(config, params).state_dict(member), torch_state)
