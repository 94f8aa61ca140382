"""A study's spec as TOML, the format the user writes it in.

The database keeps the validated spec (``studies.spec``: every field, defaults filled in), not the file's text, so
the report writes TOML back from it: :func:`set_fields_toml` — only the fields that differ from their defaults, which
is what a spec file says (a field written out at its default value is left out) and parses back to the same study —
and :func:`full_toml`, every field. :func:`dumps` is a small TOML writer for what a spec holds (tables, arrays
written inline as a person writes them, strings, numbers, booleans); TOML has no null, so unset optional fields are
left out, as in the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's; TOML also forbids a raw DEL (U+007F)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def value(item: Any) -> str:
    """One TOML value, inline (arrays and tables included)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return ("nan" if math.isnan(item) else ("inf" if item > 0 else "-inf")) if not math.isfinite(item) \
            else repr(item)
    if isinstance(item, str):
        return _string(item)
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {value(v)}" for k, v in item.items()) + "}"
    raise TypeError(f"cannot write {type(item).__name__} as TOML")


def dumps(document: Mapping[str, Any]) -> str:
    """``document`` (no ``None`` anywhere) as TOML: its scalars and arrays as ``key = value`` lines, then each
    sub-table under its ``[dotted.name]`` header."""
    lines: list[str] = []

    def table(node: Mapping[str, Any], path: list[str]) -> None:
        plain = [(k, v) for k, v in node.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in node.items() if isinstance(v, Mapping)]
        if path and (plain or not tables):
            lines.extend(["", "[" + ".".join(_key(p) for p in path) + "]"])
        lines.extend(f"{_key(str(k))} = {value(v)}" for k, v in plain)
        for k, v in tables:
            table(v, [*path, str(k)])

    table(document, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def without_nulls(value: Any) -> Any:
    """``value`` with every ``None`` dict entry left out (recursively); TOML cannot write them."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def full_toml(spec: Mapping[str, Any]) -> str:
    """Every field of the stored spec as TOML (scalars first, then one table per section)."""
    return dumps(without_nulls(spec))


def set_fields_toml(spec: Mapping[str, Any]) -> str | None:
    """The fields the spec sets away from their defaults, as TOML that ``sweeper launch`` reads back to the same
    study; None when the stored spec no longer validates (a spec stored by an older sweeper)."""
    from sweeper.spec import SpecError, parse_spec

    try:
        model = parse_spec(dict(spec))
    except SpecError:
        return None
    return dumps(without_nulls(model.model_dump(mode="json", exclude_defaults=True)))
