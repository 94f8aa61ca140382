"""Vectorised image augmentation on the batch's device: random crop with zero padding + horizontal flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(batch: Tensor, gen: torch.Generator, padding: int = 4, flip_p: float = 0.5) -> Tensor:
    """Augment images (B, C, H, W) → (B, C, H, W), same device and dtype.

    Each image is zero-padded by `padding` pixels on every side (zero in the *normalised*
    space, i.e. the per-channel mean colour), cropped back to H×W at a uniformly random
    offset in [0, 2·padding]², and mirrored left-right with probability flip_p.
    All randomness comes from `gen` (drawn on gen's device, then moved): dy, dx, then flips.
    """
    b, c, h, w = batch.shape
    dev = batch.device
    k = 2 * padding + 1
    dy = torch.randint(0, k, (b,), generator=gen, device=gen.device).to(dev)
    dx = torch.randint(0, k, (b,), generator=gen, device=gen.device).to(dev)
    flip = (torch.rand(b, generator=gen, device=gen.device) < flip_p).to(dev)
    padded = F.pad(batch, (padding, padding, padding, padding))
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = dy[:, None] + ar_h  # (B, H)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (B, W), flip folded in
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
