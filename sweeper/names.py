"""The names a study spec may use for its data set, model and optimizer, importable without torch (the spec and
the CLI validate names with them; ``sweeper.data``/``sweeper.models`` build what they name)."""

from __future__ import annotations

DATA_NAMES: tuple[str, ...] = ("linreg", "teacher", "mnist1d", "cifar10", "cifar100")
MODEL_NAMES: tuple[str, ...] = ("linear", "mlp", "cnn", "preresnet", "vgg")
OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adam", "rmsprop")
CHECK_NAMES: tuple[str, ...] = ("lsr", "sqrt-rule", "svag", "nsr", "intrinsic-lr", "noise-rank", "limit-cycles",
                                "sharpness")
"""The checks of ``sweeper.checks`` (module ``sweeper.checks.<name with _ for ->``), in the order ``all`` runs them."""
