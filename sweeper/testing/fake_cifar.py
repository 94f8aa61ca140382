"""Test helper: write a tiny but valid fake CIFAR-10/100 in the python-pickle layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from sweeper.data.cifar_layout import LAYOUTS


def write_fake_cifar(root: Path, name: str, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> Path:
    """Write random uint8 images and labels under root/<cifar-10-batches-py|cifar-100-python>/.

    CIFAR-10 gets 5 training batches of n_train_per_batch images, CIFAR-100 one `train` file of
    n_train_per_batch images; both get `n_test` test images and a meta file. Labels cycle through
    all classes (then are shuffled), so every class appears whenever there are enough images.
    Returns the batch folder (pass it or `root` as data root).
    """
    lay = LAYOUTS[name]
    rng = np.random.default_rng(seed)
    folder = Path(root) / lay.subdir
    folder.mkdir(parents=True, exist_ok=True)

    def dump(fname: str, n: int, extra: dict[bytes, object] | None = None) -> None:
        labels = rng.permutation(np.arange(n) % lay.num_classes).tolist()
        d: dict[bytes, object] = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            lay.label_key: labels,
            b"filenames": [f"fake_{i}.png".encode() for i in range(n)],
            **(extra or {}),
        }
        if name == "cifar100":
            d[b"coarse_labels"] = [lab // 5 for lab in labels]
        with open(folder / fname, "wb") as f:
            pickle.dump(d, f)

    for fname in lay.train_files:
        dump(fname, n_train_per_batch, {b"batch_label": fname.encode()})
    dump(lay.test_file, n_test, {b"batch_label": lay.test_file.encode()})
    with open(folder / lay.meta_file, "wb") as f:
        pickle.dump({lay.names_key: [f"class_{i}".encode() for i in range(lay.num_classes)]}, f)
    return folder
