"""Models for the sweeper: linear, MLP, small CNN, PreResNet and VGG, optionally scale-invariant
(docs/theory.md §1, §4).

    build_model(name, input_shape, num_outputs, **options) -> nn.Module   # (B, *input_shape) -> (B, num_outputs)
    scale_invariant_parameters(model) -> list[nn.Parameter]
"""

from sweeper.models.build import MODEL_NAMES, build_model, model_options
from sweeper.models.invariance import scale_invariant_parameters

__all__ = ["MODEL_NAMES", "build_model", "model_options", "scale_invariant_parameters"]
