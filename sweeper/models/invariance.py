"""The classifier head and the bookkeeping of scale-invariant parameters (docs/theory.md §1, §4).

A scale-invariant model (Li, Lyu & Arora 2020) has normalization layers without affine parameters, no biases in
layers that feed a norm, and a frozen bias-free head. Its output is then 0-homogeneous in the weights of all its
conv/linear layers except the head: f(c·w) = f(w) for every c > 0 (exactly in train mode; in eval mode BatchNorm's
running statistics must scale with the weights, see the tests).
"""

from __future__ import annotations

from torch import nn

ATTRIBUTE = "scale_invariant_parameter_names"
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def head(in_features: int, num_outputs: int, scale_invariant: bool) -> nn.Linear:
    """Final Linear `(B, in_features) -> (B, num_outputs)`; frozen and bias-free when `scale_invariant`."""
    layer = nn.Linear(in_features, num_outputs, bias=not scale_invariant)
    layer.requires_grad_(not scale_invariant)
    return layer


def mark_scale_invariant(model: nn.Module, head_layer: nn.Module, scale_invariant: bool) -> nn.Module:
    """Record on `model` the names of its scale-invariant parameters: the weights of every conv/linear layer but
    `head_layer` when `scale_invariant`, none otherwise. Returns `model`."""
    names: tuple[str, ...] = ()
    if scale_invariant:
        names = tuple(
            f"{name}.weight" if name else "weight"
            for name, module in model.named_modules()
            if isinstance(module, _WEIGHTED) and module is not head_layer
        )
    setattr(model, ATTRIBUTE, names)
    return model


def scale_invariant_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters w.r.t. which `model`'s output is 0-homogeneous (jointly: all scaled by one c > 0).

    Empty for models built without `scale_invariant=True` and for modules not built by `build_model`. Works on
    wrappers too: the first submodule carrying the record is used.
    """
    for module in model.modules():
        names = getattr(module, ATTRIBUTE, None)
        if names is not None:
            return [module.get_parameter(name) for name in names]
    return []

