"""Column types that store the same values on SQLite and PostgreSQL.

* :class:`PortableFloat` — a double that round-trips NaN, +inf and -inf exactly, while NULL keeps meaning
  "not measured". PostgreSQL's ``double precision`` holds all three natively. SQLite holds ±inf in a REAL but turns a
  bound NaN into NULL, so on SQLite NaN is stored as the text ``'NaN'`` (a REAL-affinity column keeps text that is
  not a number as text) and read back as ``float('nan')``. Like PostgreSQL, SQLite then sorts NaN above every number;
  SQL aggregates differ, though (SQLite's AVG counts the text as 0, PostgreSQL's gives NaN): aggregate in pandas.
* :class:`PortableJSON` — JSON (JSONB on PostgreSQL) whose non-finite floats are written as ``{"$float": "NaN"}``,
  ``{"$float": "Infinity"}`` or ``{"$float": "-Infinity"}`` (strict JSON has no token for them, and PostgreSQL
  rejects ``NaN``), and decoded back to floats. numpy scalars and arrays are converted to Python values.
* :class:`UTCDateTime` — a timezone-aware timestamp, stored as UTC and always read back aware (SQLite keeps no
  offset).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["PortableFloat", "PortableJSON", "UTCDateTime", "encode_json", "decode_json", "float_binder", "utcnow"]

_NAN_TEXT = "NaN"
_FLOAT_TAG = "$float"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _bind_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bind_float_sqlite(value: Any) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    return _NAN_TEXT if value != value else value


def float_binder(dialect_name: str) -> Callable[[Any], Any]:
    """The function that turns a Python/numpy number into the driver value a :class:`PortableFloat` stores."""
    return _bind_float_sqlite if dialect_name == "sqlite" else _bind_float


class PortableFloat(TypeDecorator[float]):
    """Double precision float; NaN/±inf round-trip on SQLite and PostgreSQL, NULL stays NULL."""

    impl = sa.Double
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        """Coerce to ``float`` (numpy scalars, ints); on SQLite write NaN as the text ``'NaN'``."""
        return float_binder(dialect.name)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite, read the text ``'NaN'`` back as ``float('nan')``; elsewhere the driver's float is final."""
        if dialect.name != "sqlite":
            return None

        def process(value: Any) -> Any:
            if value is None or type(value) is float:
                return value
            return float(value)

        return process


def encode_json(value: Any) -> Any:
    """Return ``value`` as plain JSON data: non-finite floats tagged, numpy values converted, tuples as lists."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {_FLOAT_TAG: "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, Mapping):
        return {str(k): encode_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_json(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalar or array
    if tolist is not None:
        return encode_json(tolist())
    model_dump = getattr(value, "model_dump", None)  # pydantic model
    if model_dump is not None:
        return encode_json(model_dump(mode="json"))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a JSON column: {value!r}")


def decode_json(value: Any) -> Any:
    """Inverse of :func:`encode_json`: tagged non-finite floats become floats again."""
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_TAG in value and value[_FLOAT_TAG] in _NONFINITE:
            return _NONFINITE[value[_FLOAT_TAG]]
        return {k: decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json(v) for v in value]
    return value


class PortableJSON(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL; see :func:`encode_json` for what is stored."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql  # loaded with the dialect; SQLite users never pay for it

            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else encode_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else decode_json(value)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware datetime stored in UTC; naive values are taken to be UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (the default for ``created_at`` columns)."""
    return dt.datetime.now(dt.timezone.utc)
