"""A small, safe filter language for ``sweeper runs STUDY --where EXPR``.

The expression is tokenized and parsed by hand (recursive descent) straight
into SQLAlchemy Core expressions.  Nothing from the user's text is ever
pasted into SQL: column names are looked up in the ``columns`` mapping the
caller provides, and every literal becomes a bound parameter.

Grammar (keywords are case-insensitive, column names are case-sensitive)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" expr ")" | predicate
    predicate  := COLUMN cmp_op literal
                | COLUMN ["not"] "in" "(" literal ("," literal)* ")"
                | COLUMN "is" ["not"] "null"
                | COLUMN ["not"] "like" STRING
    cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := NUMBER | STRING | "true" | "false" | "null"

* NUMBER: ``42``, ``-2``, ``0.5``, ``.5``, ``1e-3``, ``-2.5E+4``.
* STRING: single- or double-quoted; the quote character is escaped either by
  doubling it (``'it''s'``) or with a backslash (``'it\\'s'``); ``\\\\``
  is a backslash.  Any other backslash is kept as-is (``'C:\\tmp'``).
* ``col = null`` / ``col != null`` mean ``is null`` / ``is not null``.
* Integer literals must fit in 64 bits (a larger bound is written as a float).
* A timestamp column compares with an ISO 8601 string (``started_at > '2024-05-01'``; naive times are UTC).
* A JSON column takes only ``is null`` / ``is not null``: comparing or ``like``-matching its serialized text
  would depend on the backend's JSON formatting, so it is refused rather than silently matching nothing.
* SQL three-valued logic applies: ``not (x > 1)`` does not match rows where
  ``x`` is NULL.

Errors raise :class:`WhereError` (a ``ValueError``) with a one-line message
naming the offending token and its 1-based character position.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

__all__ = ["WhereError", "parse_where", "KEYWORDS"]

#: Reserved words; they cannot be used as column names in an expression.
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "like", "true", "false"})

MAX_LENGTH = 10_000
MAX_DEPTH = 64

_WHITESPACE = " \t\r\n\f\v"
_DIGITS = "0123456789"
_IDENT_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_IDENT_CHARS = _IDENT_START + _DIGITS
_NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OP_ALIASES = {"==": "=", "<>": "!="}
_TWO_CHAR_OPS = ("==", "!=", "<>", "<=", ">=")
_ONE_CHAR_OPS = ("=", "<", ">")
_OPERATOR_HINT = "=, !=, <, <=, >, >=, in, not in, is null, is not null, like"
_JSON_HINT = "; filter on the typed columns instead (optimizer, lr, batch_size, seed, ...)"


class WhereError(ValueError):
    """Invalid ``--where`` expression.

    ``position`` is the 1-based character position of the problem (or None),
    handy for drawing a caret under the expression.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class _Token:
    kind: str  # ident | kw | num | str | op | ( | ) | , | eof
    value: Any
    pos: int  # 1-based
    text: str  # source text, for messages

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of expression"
        if self.kind == "kw":
            return f"keyword {self.text!r}"
        if self.kind in ("num", "str"):
            return f"literal {self.text}"
        if self.kind == "ident":
            return f"name {self.text!r}"
        return repr(self.text)

    def found(self) -> str:
        """``'found X at position N'`` / ``'found end of expression'``."""
        if self.kind == "eof":
            return "found end of expression"
        return f"found {self.describe()} at position {self.pos}"


class _Lexer:
    """Produces tokens one at a time, so the first problem (by position) is reported."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0

    def next(self) -> _Token:
        s, n = self.src, len(self.src)
        while self.i < n and s[self.i] in _WHITESPACE:
            self.i += 1
        if self.i >= n:
            return _Token("eof", None, n + 1, "")
        start = self.i
        pos = start + 1
        ch = s[start]
        nxt = s[start + 1] if start + 1 < n else ""

        if s.startswith("--", start) or s.startswith("/*", start):
            raise WhereError(
                f"SQL comment {s[start:start + 2]!r} at position {pos} is not allowed", pos
            )
        if ch == ";":
            raise WhereError(
                f"';' at position {pos} is not allowed (statement separators are not supported)",
                pos,
            )
        if ch in _IDENT_START:
            j = start + 1
            while j < n and s[j] in _IDENT_CHARS:
                j += 1
            self.i = j
            word = s[start:j]
            low = word.lower()
            if low in KEYWORDS:
                return _Token("kw", low, pos, word)
            return _Token("ident", word, pos, word)
        if (
            ch in _DIGITS
            or (ch == "." and nxt != "" and nxt in _DIGITS)
            or (ch == "-" and nxt != "" and (nxt in _DIGITS or nxt == "."))
        ):
            return self._number(start)
        if ch in "'\"":
            return self._string(start)
        for op in _TWO_CHAR_OPS:
            if s.startswith(op, start):
                self.i = start + 2
                return _Token("op", _OP_ALIASES.get(op, op), pos, op)
        if ch in _ONE_CHAR_OPS:
            self.i = start + 1
            return _Token("op", ch, pos, ch)
        if ch in "(),":
            self.i = start + 1
            return _Token(ch, ch, pos, ch)
        raise WhereError(f"unexpected character {ch!r} at position {pos}", pos)

    def _number(self, start: int) -> _Token:
        s, pos = self.src, start + 1
        m = _NUMBER_RE.match(s, start)
        end = m.end() if m else start
        if m is None or (end < len(s) and (s[end] in _IDENT_CHARS or s[end] == ".")):
            j = end
            while j < len(s) and (s[j] in _IDENT_CHARS or s[j] in ".+-"):
                j += 1
            raise WhereError(f"malformed number {s[start:max(j, start + 1)]!r} at position {pos}", pos)
        text = m.group()
        self.i = end
        if any(c in text for c in ".eE"):
            value: int | float = float(text)
            if not math.isfinite(value):
                raise WhereError(f"number {text} at position {pos} is out of range", pos)
        else:
            value = int(text)
            if not -(2**63) <= value < 2**63:
                raise WhereError(
                    f"integer {text} at position {pos} is out of range: integers must fit in 64 bits "
                    "(write a larger bound as a float, e.g. 1e30)",
                    pos,
                )
        return _Token("num", value, pos, text)

    def _string(self, start: int) -> _Token:
        s, n, pos = self.src, len(self.src), start + 1
        quote = s[start]
        buf: list[str] = []
        j = start + 1
        while True:
            if j >= n:
                raise WhereError(f"unterminated string starting at position {pos}", pos)
            c = s[j]
            if c == "\\" and j + 1 < n and s[j + 1] in ("\\", "'", '"'):
                buf.append(s[j + 1])
                j += 2
            elif c == quote:
                if j + 1 < n and s[j + 1] == quote:  # doubled quote
                    buf.append(quote)
                    j += 2
                else:
                    j += 1
                    break
            else:
                buf.append(c)
                j += 1
        self.i = j
        return _Token("str", "".join(buf), pos, s[start:j])


# Float is not a Numeric subclass in SQLAlchemy 2.1 (both derive NumericCommon).
_NUMERIC_TYPES = (sqltypes.Integer, sqltypes.Numeric, sqltypes.Float) + (
    (sqltypes.NumericCommon,) if hasattr(sqltypes, "NumericCommon") else ()
)


def _column_kind(column: Any) -> str | None:
    t = getattr(column, "type", None)
    if isinstance(t, sa.types.TypeDecorator):  # e.g. a portable float or a UTC timestamp: what it stores as
        t = t.impl if isinstance(t.impl, sa.types.TypeEngine) else None
    if isinstance(t, sqltypes.Boolean):
        return "boolean"
    if isinstance(t, _NUMERIC_TYPES):
        return "numeric"
    if isinstance(t, sqltypes.JSON):
        return "json"
    if isinstance(t, (sqltypes.DateTime, sqltypes.Date)):
        return "datetime"
    if isinstance(t, sqltypes.String):
        return "text"
    return None


def _timestamp(value: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time (naive: UTC), or None."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


class _Parser:
    def __init__(self, src: str, columns: Mapping[str, Any]) -> None:
        self.lexer = _Lexer(src)
        self.columns = columns
        self.buf: list[_Token] = []
        self.depth = 0

    # -- token helpers -----------------------------------------------------
    def peek(self, k: int = 0) -> _Token:
        while len(self.buf) <= k:
            self.buf.append(self.lexer.next())
        return self.buf[k]

    def advance(self) -> _Token:
        tok = self.peek()
        self.buf.pop(0)
        return tok

    def is_kw(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.value == word

    # -- grammar -----------------------------------------------------------
    def parse(self) -> sa.ColumnElement[bool]:
        if self.peek().kind == "eof":
            raise WhereError("empty expression", 1)
        expr = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            raise WhereError(f"unbalanced ')' at position {tok.pos} has no matching '('", tok.pos)
        if tok.kind != "eof":
            raise WhereError(
                f"unexpected {tok.describe()} at position {tok.pos}: "
                "expected 'and', 'or' or end of expression",
                tok.pos,
            )
        return expr

    def or_expr(self) -> sa.ColumnElement[bool]:
        terms = [self.and_expr()]
        while self.is_kw("or"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else sa.or_(*terms)

    def and_expr(self) -> sa.ColumnElement[bool]:
        terms = [self.not_expr()]
        while self.is_kw("and"):
            self.advance()
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else sa.and_(*terms)

    def _enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WhereError(
                f"expression nested too deeply at position {tok.pos} (max {MAX_DEPTH} levels)",
                tok.pos,
            )

    def not_expr(self) -> sa.ColumnElement[bool]:
        if self.is_kw("not"):
            tok = self.advance()
            self._enter(tok)
            inner = self.not_expr()
            self.depth -= 1
            return sa.not_(inner)
        return self.primary()

    def primary(self) -> sa.ColumnElement[bool]:
        tok = self.peek()
        if tok.kind == "(":
            self.advance()
            self._enter(tok)
            inner = self.or_expr()
            self.depth -= 1
            close = self.peek()
            if close.kind != ")":
                raise WhereError(
                    f"unbalanced '(' at position {tok.pos}: expected ')', {close.found()}",
                    close.pos,
                )
            self.advance()
            return inner
        if tok.kind == "ident":
            return self.predicate()
        if tok.kind in ("num", "str") or (tok.kind == "kw" and tok.value in ("true", "false", "null")):
            raise WhereError(
                f"expected a column name at position {tok.pos} but found {tok.describe()}: "
                "conditions must be written 'column OP literal'",
                tok.pos,
            )
        if tok.kind == "eof":
            raise WhereError("unexpected end of expression: expected a condition", tok.pos)
        raise WhereError(
            f"unexpected {tok.describe()} at position {tok.pos}: expected a condition", tok.pos
        )

    def lookup_column(self, tok: _Token) -> Any:
        name = tok.value
        if name in self.columns:
            return self.columns[name]
        valid = sorted(str(k) for k in self.columns)
        hint = ""
        folded = [k for k in valid if k.lower() == name.lower()]
        close = folded or difflib.get_close_matches(name, valid, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        raise WhereError(
            f"unknown column {name!r} at position {tok.pos}{hint}; "
            f"valid columns: {', '.join(valid) or '(none)'}",
            tok.pos,
        )

    def comparison(self, name: str, column: Any, op_tok: _Token) -> sa.ColumnElement[bool]:
        """``column OP literal``, the operator just read; null compares only with = and != (as is / is not)."""
        lit_tok, value = self.literal(after=op_tok)
        op = op_tok.value
        if value is None:
            if op == "=":
                return column.is_(None)
            if op == "!=":
                return column.is_not(None)
            raise WhereError(
                f"cannot use {op_tok.text!r} with null at position {lit_tok.pos}; "
                "use 'is null' or 'is not null'",
                lit_tok.pos,
            )
        self.check_not_json(name, column, op_tok)
        value = self.check_type(name, column, lit_tok, value)
        if isinstance(value, bool):
            # SQLAlchemy would render Python booleans as the SQL constants
            # true/false; bind them like every other literal instead.
            value = sa.literal(value, sa.Boolean())
        return _COMPARISONS[op](column, value)

    def predicate(self) -> sa.ColumnElement[bool]:
        col_tok = self.advance()
        column = self.lookup_column(col_tok)
        name = col_tok.value
        tok = self.peek()

        if tok.kind == "op":
            self.advance()
            return self.comparison(name, column, tok)

        negate = False
        if tok.kind == "kw" and tok.value == "not":
            not_tok = self.advance()
            negate = True
            tok = self.peek()
            if not (tok.kind == "kw" and tok.value in ("in", "like")):
                raise WhereError(
                    f"expected 'in' or 'like' after 'not' at position {not_tok.pos}, "
                    f"{tok.found()}",
                    tok.pos,
                )

        if tok.kind == "kw" and tok.value == "in":
            self.advance()
            self.check_not_json(name, column, tok)
            values = self.in_list(name, column, tok)
            return column.not_in(values) if negate else column.in_(values)

        if tok.kind == "kw" and tok.value == "like":
            self.advance()
            lit_tok, value = self.literal(after=tok)
            if not isinstance(value, str):
                raise WhereError(
                    f"'like' needs a quoted string pattern, found {lit_tok.describe()} "
                    f"at position {lit_tok.pos}",
                    lit_tok.pos,
                )
            if _column_kind(column) in ("numeric", "boolean", "datetime", "json"):
                hint = _JSON_HINT if _column_kind(column) == "json" else ""
                raise WhereError(
                    f"'like' at position {tok.pos} needs a text column, but {name!r} is "
                    f"{_column_kind(column)}{hint}",
                    tok.pos,
                )
            return column.not_like(value) if negate else column.like(value)

        if tok.kind == "kw" and tok.value == "is":
            self.advance()
            is_not = False
            if self.is_kw("not"):
                self.advance()
                is_not = True
            null_tok = self.peek()
            if not (null_tok.kind == "kw" and null_tok.value == "null"):
                raise WhereError(
                    f"expected 'null' after {'is not' if is_not else 'is'!r} at position "
                    f"{tok.pos}, {null_tok.found()}",
                    null_tok.pos,
                )
            self.advance()
            return column.is_not(None) if is_not else column.is_(None)

        if tok.kind == "eof":
            raise WhereError(
                f"incomplete condition after column {name!r} at position {col_tok.pos}: "
                f"expected an operator ({_OPERATOR_HINT})",
                tok.pos,
            )
        raise WhereError(
            f"unexpected {tok.describe()} at position {tok.pos} after column {name!r}: "
            f"expected an operator ({_OPERATOR_HINT})",
            tok.pos,
        )

    def in_list(self, name: str, column: Any, in_tok: _Token) -> list[Any]:
        open_tok = self.peek()
        if open_tok.kind != "(":
            raise WhereError(
                f"expected '(' after 'in' at position {in_tok.pos}, {open_tok.found()}",
                open_tok.pos,
            )
        self.advance()
        values: list[Any] = []
        while True:
            lit_tok, value = self.literal(after=in_tok)
            if value is None:
                raise WhereError(
                    f"null is not allowed in an 'in' list (position {lit_tok.pos}); "
                    "use 'is null' instead",
                    lit_tok.pos,
                )
            values.append(self.check_type(name, column, lit_tok, value))
            tok = self.peek()
            if tok.kind == ",":
                self.advance()
                continue
            if tok.kind == ")":
                self.advance()
                return values
            raise WhereError(
                f"expected ',' or ')' in 'in' list opened at position {open_tok.pos}, "
                f"{tok.found()}",
                tok.pos,
            )

    def literal(self, after: _Token) -> tuple[_Token, Any]:
        tok = self.peek()
        if tok.kind in ("num", "str"):
            self.advance()
            return tok, tok.value
        if tok.kind == "kw" and tok.value in ("true", "false", "null"):
            self.advance()
            return tok, {"true": True, "false": False, "null": None}[tok.value]
        if tok.kind == "ident":
            if tok.value in self.columns:
                raise WhereError(
                    f"column-vs-column comparisons are not supported: {tok.value!r} at "
                    f"position {tok.pos} is a column; compare against a literal",
                    tok.pos,
                )
            raise WhereError(
                f"expected a literal at position {tok.pos} but found bare word {tok.value!r}; "
                f"quote strings, e.g. '{tok.value}'",
                tok.pos,
            )
        raise WhereError(
            f"expected a literal after {after.text!r} at position {after.pos}, {tok.found()}",
            tok.pos,
        )

    @staticmethod
    def check_not_json(name: str, column: Any, op_tok: _Token) -> None:
        if _column_kind(column) == "json":
            raise WhereError(
                f"{op_tok.text!r} at position {op_tok.pos} does not apply to JSON column {name!r} "
                f"(only 'is null' and 'is not null' do){_JSON_HINT}",
                op_tok.pos,
            )

    @staticmethod
    def check_type(name: str, column: Any, tok: _Token, value: Any) -> Any:
        """``value`` as bound for ``column`` (an ISO string becomes a datetime); WhereError if it does not fit."""
        kind = _column_kind(column)
        if kind == "datetime" and isinstance(value, str):
            stamp = _timestamp(value)
            if stamp is not None:
                return stamp
        if kind is None:
            return value
        ok = (
            (kind == "boolean" and isinstance(value, bool))
            or (kind == "numeric" and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (kind == "text" and isinstance(value, str))
        )
        if not ok:
            hint = {"boolean": "; use true or false",
                    "datetime": "; use an ISO date or time in quotes, e.g. '2024-05-01' or '2024-05-01T12:00:00'"}
            raise WhereError(
                f"cannot compare {kind} column {name!r} with {tok.describe()} "
                f"at position {tok.pos}{hint.get(kind, '')}",
                tok.pos,
            )
        return value


def parse_where(expr: str, columns: Mapping[str, Any]) -> sa.ColumnElement[bool]:
    """Parse a ``--where`` expression into a SQLAlchemy boolean expression.

    ``columns`` maps the names users may type to SQLAlchemy column
    expressions (e.g. ``{c.name: c for c in runs.c}``); only those names are
    accepted.  Literals become bound parameters.  Raises :class:`WhereError`.
    """
    if not isinstance(expr, str):
        raise TypeError(f"expression must be a str, not {type(expr).__name__}")
    if len(expr) > MAX_LENGTH:
        raise WhereError(f"expression too long ({len(expr)} characters, max {MAX_LENGTH})")
    return _Parser(expr, columns).parse()
