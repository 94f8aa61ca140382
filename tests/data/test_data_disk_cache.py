"""The node-wide file cache of generated data sets: made once, read back equal, keyed by parameters and version,
rebuilt when unreadable, built once when asked for at the same time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sweeper.data import disk_cache
from sweeper.data.disk_cache import cached_arrays


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(disk_cache.DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


class Maker:
    def __init__(self, seconds: float = 0.0):
        self.calls, self.seconds = 0, seconds

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        time.sleep(self.seconds)
        return {"x": np.arange(6, dtype=np.float64).reshape(2, 3) / 7, "y": np.array([3, 1], dtype=np.int64)}


def test_made_once_then_read_back_equal(folder: Path) -> None:
    make = Maker()
    first = cached_arrays("toy", {"n": 2}, "1.0", make)
    again = cached_arrays("toy", {"n": 2}, "1.0", make)
    assert make.calls == 1
    for name in ("x", "y"):
        assert np.array_equal(first[name], again[name]) and first[name].dtype == again[name].dtype
    assert len(list(folder.glob("toy-*.npz"))) == 1 and not list(folder.glob("*.tmp"))


def test_other_parameters_or_version_are_other_files(folder: Path) -> None:
    make = Maker()
    for params, version in (({"n": 2}, "1.0"), ({"n": 3}, "1.0"), ({"n": 2}, "1.1")):
        cached_arrays("toy", params, version, make)
    assert make.calls == 3 and len(list(folder.glob("toy-*.npz"))) == 3


def test_an_unreadable_file_is_rebuilt(folder: Path) -> None:
    make = Maker()
    cached_arrays("toy", {"n": 2}, "1.0", make)
    (path,) = folder.glob("toy-*.npz")
    path.write_bytes(b"not a zip")
    again = cached_arrays("toy", {"n": 2}, "1.0", make)
    assert make.calls == 2 and again["y"].tolist() == [3, 1]
    assert np.load(path)["y"].tolist() == [3, 1]


def test_concurrent_askers_wait_for_one_build(folder: Path) -> None:
    make = Maker(seconds=0.3)
    threads = [threading.Thread(target=cached_arrays, args=("toy", {"n": 2}, "1.0", make)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert make.calls == 1


def test_an_empty_folder_setting_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(disk_cache.DIR_ENV, "")
    make = Maker()
    cached_arrays("toy", {"n": 2}, "1.0", make)
    cached_arrays("toy", {"n": 2}, "1.0", make)
    assert make.calls == 2


def test_a_folder_that_cannot_be_written_means_building_without_the_file_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(disk_cache.DIR_ENV, str(blocker / "cache"))  # below a file: no folder can be made (even as root)
    make = Maker()
    assert cached_arrays("toy", {"n": 2}, "1.0", make)["y"].tolist() == [3, 1]
    assert make.calls == 1


def test_a_failed_write_leaves_no_file_and_returns_the_arrays(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    make = Maker()
    assert cached_arrays("toy", {"n": 2}, "1.0", make)["y"].tolist() == [3, 1]
    assert not list(folder.glob("*.npz")) and not list(folder.glob("*.tmp"))
