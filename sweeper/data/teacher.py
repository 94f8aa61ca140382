"""Teacher–student classification: labels from a random 1-hidden-layer ReLU teacher.

x ~ N(0, I_dim); teacher logits z = W2·relu(W1·x + b1) with W1 ~ N(0, 1/dim), b1 ~ N(0, 1/4),
W2 ~ N(0, 1/width), standardised per class (mean 0, std 1 over a fixed reference sample) and offset
by per-class biases fitted so each class wins ≈1/classes of a reference sample; label = argmax z.
With probability label_noise a *training* label is replaced by a uniformly random class (which may
equal the clean one); test labels are clean.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .common import Dataset, check_positive_int, cpu_generator, resolve_options

DEFAULTS: dict[str, Any] = dict(
    n_train=8192, n_test=2048, dim=32, classes=10, teacher_width=64, label_noise=0.0, seed=0
)
N_REFERENCE = 16384  # sample used to standardise the teacher's logits (fixed, independent of n_train)


class Teacher:
    """Random ReLU network dim → width → classes, float64 on CPU, with per-class standardisation and balancing."""

    def __init__(self, dim: int, width: int, classes: int, gen: torch.Generator) -> None:
        f64 = torch.float64
        self.w1 = torch.randn(width, dim, generator=gen, dtype=f64) / dim**0.5
        self.b1 = 0.5 * torch.randn(width, generator=gen, dtype=f64)
        self.w2 = torch.randn(classes, width, generator=gen, dtype=f64) / width**0.5
        ref = self.raw_logits(torch.randn(N_REFERENCE, dim, generator=gen, dtype=f64))
        self.mean, self.std = ref.mean(0), ref.std(0).clamp_min(1e-12)
        self.bias = balancing_bias((ref - self.mean) / self.std)

    def logits(self, x: Tensor) -> Tensor:
        """x (n, dim) float64 → standardised, balanced logits (n, classes)."""
        return (self.raw_logits(x) - self.mean) / self.std + self.bias

    def raw_logits(self, x: Tensor) -> Tensor:
        """x (n, dim) float64 → logits (n, classes) before standardisation."""
        return torch.relu(x @ self.w1.T + self.b1) @ self.w2.T

    def labels(self, x: Tensor) -> Tensor:
        """x (n, dim) float64 → clean labels (n,) int64."""
        return self.logits(x).argmax(1)


def balancing_bias(z: Tensor, iters: int = 300, tol: float = 0.1) -> Tensor:
    """Per-class offsets b (classes,) making argmax(z + b) near-uniform over the rows of z (n, classes).

    Subgradient descent on the convex semi-discrete transport dual mean_i max_k(z_ik + b_k) − mean_k b_k
    (its subgradient is freq − 1/K); stops once every class frequency is within ±tol·(1/K) and
    returns the best b seen. Some teachers (e.g. dim = width = 1) cannot be balanced: a warning is issued
    if a class stays below 10 % of its share.
    """
    n, k = z.shape
    z = z.float()
    b = torch.zeros(k)
    best_dev, best_b = float("inf"), b.clone()
    for t in range(iters):
        share = torch.bincount((z + b).argmax(1), minlength=k).float() * (k / n)  # 1 = balanced
        dev = float((share - 1).abs().max())
        if dev < best_dev:
            best_dev, best_b = dev, b.clone()
        if dev < tol:
            break
        b -= 2.0 / (1 + t) ** 0.5 * (share - 1) / k
    share = torch.bincount((z + best_b).argmax(1), minlength=k).float() * (k / n)
    if float(share.min()) < 0.1:
        warnings.warn(f"teacher labels are degenerate: smallest class share {float(share.min()) / k:.4f} "
                      f"(uniform = {1 / k:.4f}); increase dim or teacher_width", stacklevel=3)
    return (best_b - best_b.mean()).double()


def shape(**options: Any) -> tuple[tuple[int, ...], int]:
    """(input shape, outputs) of the data set these options build, without building it."""
    return (int(options.get("dim", DEFAULTS["dim"])),), int(options.get("classes", DEFAULTS["classes"]))


def build(device: torch.device, dtype: torch.dtype, **options: Any) -> Dataset:
    """Build the teacher data set; meta: y_train_clean, noise_mask (train labels resampled), teacher."""
    o = resolve_options("teacher", options, DEFAULTS)
    n_train, n_test = check_positive_int("n_train", o["n_train"]), check_positive_int("n_test", o["n_test"])
    dim, width = check_positive_int("dim", o["dim"]), check_positive_int("teacher_width", o["teacher_width"])
    classes = check_positive_int("classes", o["classes"], minimum=2)
    p = float(o["label_noise"])
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"option label_noise must be in [0, 1], got {p}")

    gen = cpu_generator(o["seed"])
    teacher = Teacher(dim, width, classes, gen)
    x_test = torch.randn(n_test, dim, generator=gen, dtype=torch.float64)
    y_test = teacher.labels(x_test)
    x_train = torch.randn(n_train, dim, generator=gen, dtype=torch.float64)
    y_clean = teacher.labels(x_train)
    noise_mask = torch.rand(n_train, generator=gen, dtype=torch.float64) < p
    random_labels = torch.randint(0, classes, (n_train,), generator=gen)
    y_train = torch.where(noise_mask, random_labels, y_clean)

    return Dataset(
        x_train=x_train.to(device=device, dtype=dtype), y_train=y_train.to(device),
        x_test=x_test.to(device=device, dtype=dtype), y_test=y_test.to(device),
        task="classification", num_outputs=classes, input_shape=(dim,),
        meta={"y_train_clean": y_clean, "noise_mask": noise_mask, "label_noise": p, "teacher": teacher},
    )
