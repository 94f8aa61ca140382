"""The outage journal: batches of run writes that the database could not take yet, in a local append-only file.

One batch (a list of :class:`db.writer.RunWrite`, what the driver's DB callback writes in one transaction) is
one line of JSON. Values JSON has no word for are tagged: a datetime ``{"$dt": ISO 8601}``, bytes
``{"$b64": base64}``; a numpy array (a diagnostic's payload) is stored as the ``.npy`` bytes the database keeps,
numpy scalars as numbers; NaN and ±inf are written as JSON's ``NaN``/``Infinity`` extension. Every append is
flushed and fsync'd before it returns. A torn last line (the process killed, or the disk full, mid-append) is
ignored on reading and dropped by the next append.

Replaying (:meth:`Journal.replay`) writes every batch in order in one transaction and then deletes the file, so
a replay that fails writes nothing and a journal is never applied in part; applying one twice (the process
killed between the commit and the deletion) changes nothing but ``runs.attempts`` (``db.writer.write_run_batch``).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.writer import RunWrite, write_run_batch

Batch = list[RunWrite]


def _plain(value: Any) -> Any:
    """JSON's default hook: tag what JSON cannot say."""
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if type(value).__module__ == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            return _plain(buf.getvalue())
        return value.item()
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _tagged(obj: dict[str, Any]) -> Any:
    if obj.keys() == {"$dt"}:
        return dt.datetime.fromisoformat(obj["$dt"])
    if obj.keys() == {"$b64"}:
        return base64.b64decode(obj["$b64"])
    return obj


def encode(batch: Batch) -> str:
    """One line (no newline) holding ``batch``."""
    rows = [[w.run_id, w.points, w.diagnostics, w.fields, w.attempts_added] for w in batch]
    return json.dumps(rows, default=_plain, separators=(",", ":"))


def decode(line: str) -> Batch:
    return [RunWrite(run_id, points, diagnostics, fields, attempts)
            for run_id, points, diagnostics, fields, attempts in json.loads(line, object_hook=_tagged)]


def _drop_torn_piece(f: BinaryIO, block: int = 1 << 16) -> None:
    """Truncate ``f`` (opened ``a+b``) after its last newline: a piece without one is a torn append (the process
    killed, or the disk full, mid-write), ignored on reading, and a line appended after it would be glued to it."""
    end = f.seek(0, os.SEEK_END)
    at = end
    while at > 0:
        start = max(0, at - block)
        f.seek(start)
        newline = f.read(at - start).rfind(b"\n")
        if newline >= 0:
            at = start + newline + 1
            break
        at = start
    if at != end:
        f.truncate(at)


class Journal:
    """The journal file at ``path`` (created with its folder at the first append)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __bool__(self) -> bool:
        """True if the file holds anything."""
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, batches: Iterable[Batch]) -> None:
        """Append ``batches`` (oldest first), one line each; durable (fsync'd) when it returns."""
        text = "".join(encode(b) + "\n" for b in batches)
        if not text:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            _drop_torn_piece(f)
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[Batch]:
        """The batches in the file, oldest first (none if it does not exist)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        return [decode(line) for line in lines[:-1] if line]  # the last piece has no newline: empty, or torn

    def clear(self) -> None:
        """Delete the file (its batches are in the database)."""
        self.path.unlink(missing_ok=True)

    def replay(self, engine: Engine) -> int:
        """Write every batch into the database in one transaction, then delete the file; the number of batches.
        Database errors propagate, the file untouched."""
        batches = self.read()
        if batches:
            with Session(engine) as session, session.begin():
                for batch in batches:
                    write_run_batch(session, batch)
        self.clear()
        return len(batches)
