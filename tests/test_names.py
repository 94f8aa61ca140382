"""``sweeper.names`` (torch-free) lists exactly what the spec accepts and what the builders and checks provide."""

from __future__ import annotations

import importlib
import types
from typing import Literal, Union, get_args, get_origin

import pytest

from sweeper import spec
from sweeper.names import CHECK_NAMES, DATA_NAMES, MODEL_NAMES, OPTIMIZER_NAMES


def _tags(union_spec) -> tuple[str, ...]:
    """The ``name`` literals of a discriminated-union spec type, in declaration order."""
    (members, _field) = get_args(union_spec)
    assert get_origin(members) in (Union, types.UnionType)  # Union[A, B] or A | B
    return tuple(tag for model in get_args(members) for tag in get_args(model.model_fields["name"].annotation)
                 if get_origin(model.model_fields["name"].annotation) is Literal)


@pytest.mark.parametrize("names, union_spec", [(DATA_NAMES, spec.DataSpec), (MODEL_NAMES, spec.ModelSpec),
                                               (OPTIMIZER_NAMES, spec.OptimizerSpec)])
def test_the_spec_accepts_exactly_the_listed_names(names, union_spec):
    assert _tags(union_spec) == names


def test_every_model_name_has_a_builder():
    from sweeper.models.build import BUILDERS

    assert tuple(BUILDERS) == MODEL_NAMES


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_every_check_name_is_a_check_module(name):
    from sweeper.checks import registry

    assert callable(importlib.import_module(registry.MODULES[name]).check)
