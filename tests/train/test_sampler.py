"""BatchSampler.draw_steps equals successive draws: the same indices and the same generator state afterwards."""

from __future__ import annotations

import pytest
import torch

from sweeper.train.sampler import BatchSampler


def _pair(n: int, batch: int, replacement: bool) -> tuple[BatchSampler, BatchSampler]:
    return tuple(BatchSampler(n, batch, replacement, torch.Generator().manual_seed(7)) for _ in range(2))  # type: ignore[return-value]


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize(("n", "batch", "batches"), [(100, 8, 1), (100, 7, 2), (64, 8, 1), (4096, 32, 2)])
def test_draw_steps_equals_successive_draws(replacement: bool, n: int, batch: int, batches: int) -> None:
    one, many = _pair(n, batch, replacement)
    for steps in (1, 3, 40, 17):  # crosses epoch boundaries and leaves remainders when shuffled
        expected = torch.stack([one.draw(batches) for _ in range(steps)])
        got = many.draw_steps(steps, batches)
        assert got.shape == (steps, batches * batch)
        assert torch.equal(got, expected)
        assert torch.equal(one.generator.get_state(), many.generator.get_state())
        assert one.state_dict()["pos"] == many.state_dict()["pos"]


def test_draw_steps_refuses_a_batch_larger_than_the_data() -> None:
    sampler = BatchSampler(10, 8, False, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="exceeds the 10 training examples"):
        sampler.draw_steps(1, 2)
