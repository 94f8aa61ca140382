"""Exceptions of the results database, each with a message fit to show a user as is."""

from __future__ import annotations

__all__ = [
    "SweeperDBError",
    "DatabaseVersionError",
    "UnknownStudy",
    "UnknownRun",
    "AmbiguousRun",
    "StudySpecMismatch",
]


class SweeperDBError(Exception):
    """Base class of the errors raised by ``db``."""


class DatabaseVersionError(SweeperDBError):
    """The database schema is not at the revision this code needs; the message names the command to run."""


class UnknownStudy(SweeperDBError, LookupError):
    """No study with that name (or id)."""


class UnknownRun(SweeperDBError, LookupError):
    """No run with that id or trial id."""


class AmbiguousRun(SweeperDBError, LookupError):
    """A trial id found in more than one study; name the study."""


class StudySpecMismatch(SweeperDBError, ValueError):
    """A study of that name exists with a different spec."""
