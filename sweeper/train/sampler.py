"""Batch index sampling on the data's device from a per-trial generator, with replacement or by reshuffling."""

from __future__ import annotations

import torch


class BatchSampler:
    """Draws index batches of ``batch_size`` from ``range(n)``.

    ``replacement``: i.i.d. uniform indices. ``shuffle``: a fresh permutation each epoch, consumed in order; a
    remainder shorter than the request is dropped and a new permutation drawn (drop-last semantics).
    """

    def __init__(self, n: int, batch_size: int, replacement: bool, generator: torch.Generator):
        self.n, self.batch_size, self.replacement, self.generator = n, batch_size, replacement, generator
        self.device = generator.device
        self._perm: torch.Tensor | None = None
        self._pos = 0

    def draw(self, batches: int = 1) -> torch.Tensor:
        """Indices of ``batches`` independent batches, concatenated: shape (batches·B,), int64 on the device."""
        k = batches * self.batch_size
        if self.replacement:
            return torch.randint(self.n, (k,), generator=self.generator, device=self.device)
        if self._perm is None or self._pos + k > self.n:
            self._perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self._pos = 0
        out = self._perm[self._pos : self._pos + k]
        self._pos += k
        return out

    def draw_into(self, out: torch.Tensor) -> None:
        """:meth:`draw` into ``out`` (shape (batches·B,), int64, on the device): the same indices, the same
        generator state afterwards, without a new tensor (a pack gathers all its members' rows at once)."""
        if self.replacement:
            torch.randint(self.n, out.shape, generator=self.generator, device=self.device, out=out)
        else:
            out.copy_(self.draw(out.numel() // self.batch_size))

    def state_dict(self) -> dict:
        return {"perm": None if self._perm is None else self._perm.cpu(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._perm = None if state["perm"] is None else state["perm"].to(self.device)
        self._pos = state["pos"]
