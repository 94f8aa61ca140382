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

    def draw_steps(self, steps: int, batches: int = 1) -> torch.Tensor:
        """``steps`` successive :meth:`draw` calls at once: shape (steps, batches·B), the same indices and the same
        generator state afterwards (a pack draws each member's batches up to its next event in one call).

        With replacement on a CPU generator one ``randint`` of steps·batches·B values equals the successive ones (CPU
        sampling is serial; tests/train/test_sampler.py pins it); elsewhere the draws are made one by one. Shuffled:
        whole runs of batches are sliced from each permutation, a new one drawn where the next batch would not fit."""
        k = batches * self.batch_size
        if self.replacement:
            if self.device.type == "cpu":
                return torch.randint(self.n, (steps, k), generator=self.generator)
            return torch.stack([self.draw(batches) for _ in range(steps)])
        parts, left = [], steps
        while left:
            if self._perm is None or self._pos + k > self.n:
                self._perm = torch.randperm(self.n, generator=self.generator, device=self.device)
                self._pos = 0
            m = min(left, (self.n - self._pos) // k)
            if m == 0:
                raise ValueError(f"a draw of {k} examples exceeds the {self.n} training examples")
            parts.append(self._perm[self._pos : self._pos + m * k].view(m, k))
            self._pos, left = self._pos + m * k, left - m
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"perm": None if self._perm is None else self._perm.cpu(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._perm = None if state["perm"] is None else state["perm"].to(self.device)
        self._pos = state["pos"]
