"""Tests for CIFAR loading (from a fake written by write_fake_cifar), root checks and augmentation."""

from pathlib import Path

import pytest
import torch

from sweeper.data import build_dataset, check_cifar_root
from sweeper.data.augment import random_crop_flip
from sweeper.testing.fake_cifar import write_fake_cifar

CPU = torch.device("cpu")


@pytest.mark.parametrize("name,classes,n_train", [("cifar10", 10, 5 * 30), ("cifar100", 100, 250)])
def test_read_back_both_root_forms(tmp_path: Path, name: str, classes: int, n_train: int) -> None:
    per_batch = 30 if name == "cifar10" else 250
    folder = write_fake_cifar(tmp_path, name, n_train_per_batch=per_batch, n_test=120)
    a = build_dataset(name, CPU, torch.float32, root=str(tmp_path))
    b = build_dataset(name, CPU, torch.float32, root=str(folder))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.shape == (n_train, 3, 32, 32) and a.x_test.shape == (120, 3, 32, 32)
    assert a.y_train.shape == (n_train,) and a.y_train.dtype == torch.long
    assert a.num_outputs == classes and a.input_shape == (3, 32, 32) and a.task == "classification"
    assert int(a.y_train.max()) < classes and int(a.y_train.min()) >= 0
    assert int(a.y_train.max()) >= classes - 10  # fine labels (0..99) for CIFAR-100, not coarse (0..19)
    mean = a.x_train.mean(dim=(0, 2, 3))
    std = a.x_train.double().std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    assert a.augment is not None and a.meta["label_names"][0] == "class_0"


def test_pixels_and_labels_read_correctly(tmp_path: Path) -> None:
    import pickle

    folder = write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=4, n_test=3)
    with open(folder / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    d = build_dataset("cifar10", CPU, torch.float64, root=str(tmp_path), augment=False)
    assert d.augment is None
    mean = torch.as_tensor(d.meta["mean"]).view(3, 1, 1)
    std = torch.as_tensor(d.meta["std"]).view(3, 1, 1)
    pixels = torch.as_tensor(raw[b"data"][1], dtype=torch.float64).view(3, 32, 32)  # channel-major
    torch.testing.assert_close(d.x_train[5], (pixels - mean) / std)
    assert int(d.y_train[5]) == raw[b"labels"][1]


def test_n_train_cap(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=10, n_test=5)
    full = build_dataset("cifar10", CPU, torch.float32, root=str(tmp_path))
    cap = build_dataset("cifar10", CPU, torch.float32, root=str(tmp_path), n_train=17)
    assert cap.n_train == 17 and torch.equal(cap.x_train, full.x_train[:17])
    with pytest.raises(ValueError, match="n_train"):
        build_dataset("cifar10", CPU, torch.float32, root=str(tmp_path), n_train=51)


def test_check_cifar_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    msg = check_cifar_root("cifar10", str(missing))
    assert msg is not None and "nope" in msg and "data_batch_1..5" in msg and "\n" not in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = check_cifar_root("cifar10", str(empty))
    assert msg is not None and "has no CIFAR-10 batches" in msg and "cifar-10-batches-py/" in msg
    msg100 = check_cifar_root("cifar100", str(empty))
    assert msg100 is not None and "CIFAR-100" in msg100 and "cifar-100-python/" in msg100

    folder = write_fake_cifar(tmp_path / "good", "cifar10", n_train_per_batch=2, n_test=2)
    assert check_cifar_root("cifar10", str(tmp_path / "good")) is None
    assert check_cifar_root("cifar10", str(folder)) is None
    assert check_cifar_root("cifar100", str(folder)) is not None  # wrong variant
    (folder / "data_batch_3").unlink()
    msg = check_cifar_root("cifar10", str(folder))
    assert msg is not None and "data_batch_3" in msg
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        build_dataset("cifar10", CPU, torch.float32, root=str(folder))
    with pytest.raises(ValueError, match="root"):
        build_dataset("cifar10", CPU, torch.float32)


class _RunsCode:
    """What an attacker would put in a pickle: unpickling it calls os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path: Path, protocol: int) -> None:
    import pickle

    from sweeper.data.cifar import UnsafePickleError

    folder = write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=4, n_test=3)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _RunsCode(marker), b"labels": [0]}, f, protocol=protocol)
    with pytest.raises(UnsafePickleError) as info:
        build_dataset("cifar10", CPU, torch.float32, root=str(tmp_path))
    message = str(info.value)
    assert not marker.exists()
    assert "\n" not in message and str(folder / "data_batch_3") in message and "system" in message
    assert message.startswith("data.root: ") and "only numpy arrays, lists, dicts and bytes" in message


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",  # protocol 0: builtins.eval
    b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04exec\x94\x93\x94.",
    b"not a pickle at all",
    b"",
])
def test_other_non_cifar_files_are_one_line_errors(tmp_path: Path, payload: bytes) -> None:
    from sweeper.data.cifar import UnsafePickleError

    folder = write_fake_cifar(tmp_path, "cifar10", n_train_per_batch=4, n_test=3)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(UnsafePickleError) as info:
        build_dataset("cifar10", CPU, torch.float32, root=str(folder))
    assert "test_batch" in str(info.value) and "\n" not in str(info.value)


def test_protocol_0_to_5_and_numpy_core_pickles_load(tmp_path: Path) -> None:
    """Real CIFAR files are Python 2 pickles naming numpy.core.multiarray; newer writers use other protocols."""
    import pickle

    import numpy as np

    from sweeper.data.cifar import _unpickle

    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 1], b"label": np.int64(7),
             b"filenames": [b"a.png", b"b.png"], b"batch_label": "training batch 1 of 5"}
    for protocol in range(6):
        blob = pickle.dumps(batch, protocol=protocol)
        for name in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
            path = tmp_path / f"p{protocol}"
            path.write_bytes(blob.replace(b"numpy._core.multiarray\n", name + b"\n"))  # GLOBAL (protocols 0-2)
            out = _unpickle(path)
            assert np.array_equal(out[b"data"], batch[b"data"]) and out[b"labels"] == [3, 1]
            assert out[b"label"] == 7 and out[b"filenames"] == [b"a.png", b"b.png"]


def _images(n: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) + 5.0  # no zeros by chance


def test_augment_shape_determinism_and_seeds() -> None:
    x = _images()
    out1 = random_crop_flip(x, torch.Generator().manual_seed(1))
    out2 = random_crop_flip(x, torch.Generator().manual_seed(1))
    out3 = random_crop_flip(x, torch.Generator().manual_seed(2))
    assert out1.shape == x.shape and out1.dtype == x.dtype
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)
    gen = torch.Generator().manual_seed(1)  # consecutive calls advance the generator
    assert not torch.equal(random_crop_flip(x, gen), random_crop_flip(x, gen))


def test_augment_really_crops_and_flips() -> None:
    x = _images(256)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    has_zero = (out == 0).flatten(1).any(1)
    assert 0.5 < has_zero.float().mean() < 1.0  # padding visible in most (offset ≠ centre) but not all
    big = _images(2048)
    out_big = random_crop_flip(big, torch.Generator().manual_seed(0))
    unchanged = (out_big == big).flatten(1).all(1).sum()
    flipped = (out_big == big.flip(-1)).flatten(1).all(1).sum()
    assert 8 < unchanged < 45 and 8 < flipped < 45  # centre crop without / with flip: p = 1/162 each (≈12.6)
    # Every output is a shifted (possibly mirrored) copy: check one image exactly against its offset.
    for i in range(256):
        for flip in (False, True):
            src = x[i].flip(-1) if flip else x[i]
            padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
            if any(torch.equal(out[i], padded[:, dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9)):
                break
        else:
            raise AssertionError(f"output {i} is not a padded crop (+ flip) of its input")
    # Horizontal flip happens about half the time: compare with the unflipped / flipped source row-wise.
    n_flip = 0
    for i in range(256):
        padded = torch.nn.functional.pad(x[i].flip(-1), (4, 4, 4, 4))
        n_flip += any(torch.equal(out[i], padded[:, dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9))
    assert 90 < n_flip < 166


def test_augment_uses_only_given_generator() -> None:
    x = _images(8)
    torch.manual_seed(0)
    a = random_crop_flip(x, torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    b = random_crop_flip(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    state = torch.get_rng_state()
    random_crop_flip(x, torch.Generator().manual_seed(3))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu_given_cpu_generator() -> None:
    x = _images(16)
    cpu = random_crop_flip(x, torch.Generator().manual_seed(4))
    gpu = random_crop_flip(x.cuda(), torch.Generator().manual_seed(4))
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu())
    gen = torch.Generator(device="cuda").manual_seed(4)
    assert random_crop_flip(x.cuda(), gen).shape == x.shape
