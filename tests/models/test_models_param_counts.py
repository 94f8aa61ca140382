"""Parameter counts against closed-form counts of the reference architectures."""

from __future__ import annotations

import pytest

from sweeper.models import build_model


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def preresnet_count(n: int, k: int = 10, bn: bool = True) -> int:
    """CIFAR PreResNet-(6n+2): 3x3 convs, 1x1 projection shortcuts at the two downsamplings, BN affine (2 per ch)."""
    total, prev = 3 * 9 * 16, 16
    for out in (16, 32, 64):
        for _ in range(n):
            total += 2 * prev * bn + 9 * prev * out + 2 * out * bn + 9 * out * out
            total += prev * out if prev != out else 0
            prev = out
    return total + 2 * 64 * bn + 64 * k + k


def vgg_count(cfg: list[int], k: int = 10) -> int:
    total, prev = 0, 3
    for out in cfg:
        total += 9 * prev * out + 2 * out  # bias-free conv + BN affine
        prev = out
    return total + prev * k + k


def test_preresnet20_cifar() -> None:
    n = count(build_model("preresnet", (3, 32, 32), 10, depth=20))
    assert n == preresnet_count(3) == 272_282  # ~0.27M as in He et al.
    assert count(build_model("preresnet", (3, 32, 32), 10, depth=32)) == preresnet_count(5)


def test_vgg_cifar() -> None:
    v16 = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    n = count(build_model("vgg", (3, 32, 32), 10, depth=16))
    assert n == vgg_count(v16) == 14_724_042  # ~14.7M, CIFAR-style VGG-16-BN with one Linear head
    assert count(build_model("vgg", (3, 32, 32), 10, depth=11)) == vgg_count([64, 128, 256, 256, 512, 512, 512, 512])


@pytest.mark.parametrize("width", [0.5, 2.0])
def test_width_multiplier(width: float) -> None:
    base = count(build_model("vgg", (3, 32, 32), 10, depth=11))
    ratio = count(build_model("vgg", (3, 32, 32), 10, depth=11, width=width)) / base
    assert ratio == pytest.approx(width**2, rel=0.02)


def test_scale_invariant_drops_affine_and_freezes_head() -> None:
    si = build_model("preresnet", (3, 32, 32), 10, depth=20, scale_invariant=True)
    trainable = sum(p.numel() for p in si.parameters() if p.requires_grad)
    norm1 = [16, 16, 16, 16, 32, 32, 32, 64, 64]  # pre-activation norm of each block (its input channels)
    norm2 = [16, 16, 16, 32, 32, 32, 64, 64, 64]
    bn_affine = 2 * (sum(norm1) + sum(norm2) + 64)  # + final norm
    assert trainable == preresnet_count(3) - bn_affine - (64 * 10 + 10)
    assert count(si) == trainable + 64 * 10
