"""A process-wide cache of built data sets, so that a worker that trains many trials builds each one once.

The key is a content hash of the data spec (name and options as canonical JSON), the device and the dtype; a hit
returns the *same* :class:`Dataset` object, shared by every trial of the process. Trials only read it (batches are
gathered copies, augmentation writes new tensors). Should anything write into a cached tensor in place, its
version counter (``Tensor._version``, shared with every view) moves, and the next lookup rebuilds the entry
instead of handing out changed data.

Bounded: least recently used entries beyond ``SWEEPER_DATA_CACHE_SIZE`` (default 4; 0 turns caching off) are
dropped. Thread-safe (a build happens under the lock, so concurrent trials of one spec build it once).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .common import Dataset

SIZE_ENV = "SWEEPER_DATA_CACHE_SIZE"
DEFAULT_SIZE = 4


def cache_key(name: str, device: torch.device | str, dtype: torch.dtype, options: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of (name, options, device, dtype)."""
    spec = {"name": name, "options": options, "device": str(torch.device(device)), "dtype": str(dtype)}
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _tensors(data: Dataset) -> list[torch.Tensor]:
    meta = [v for v in data.meta.values() if isinstance(v, torch.Tensor)]
    return [data.x_train, data.y_train, data.x_test, data.y_test, *meta]


@dataclass
class _Entry:
    data: Dataset
    versions: tuple[int, ...]

    @classmethod
    def of(cls, data: Dataset) -> _Entry:
        return cls(data, tuple(t._version for t in _tensors(data)))

    def intact(self) -> bool:
        return tuple(t._version for t in _tensors(self.data)) == self.versions


@dataclass
class CacheInfo:
    hits: int
    builds: int
    rebuilt_after_mutation: int
    entries: int
    max_entries: int


class DatasetCache:
    """An LRU map from :func:`cache_key` to a built data set."""

    def __init__(self, max_entries: int | None = None):
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.builds = self.rebuilt_after_mutation = 0

    @property
    def max_entries(self) -> int:
        if self._max_entries is not None:
            return self._max_entries
        raw = os.environ.get(SIZE_ENV, "")
        try:
            return max(0, int(raw)) if raw else DEFAULT_SIZE
        except ValueError as e:
            raise ValueError(f"{SIZE_ENV} must be an integer ≥ 0, got {raw!r}") from e

    def get(self, key: str, build: Callable[[], Dataset]) -> Dataset:
        """The cached data set under ``key``, else ``build()`` (stored unless the cache is off)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry.intact():
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry.data
                del self._entries[key]
                self.rebuilt_after_mutation += 1
            data = build()
            self.builds += 1
            limit = self.max_entries
            if limit > 0:
                self._entries[key] = _Entry.of(data)
                while len(self._entries) > limit:
                    self._entries.popitem(last=False)
            return data

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.builds = self.rebuilt_after_mutation = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.hits, self.builds, self.rebuilt_after_mutation, len(self._entries),
                             self.max_entries)


DATASETS = DatasetCache()
"""The process's cache, used by ``build_dataset(..., cache=True)`` (and so by every ``Trial``)."""
