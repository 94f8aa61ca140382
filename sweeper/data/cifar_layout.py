"""Where the CIFAR-10/100 python-pickle batches live under a root folder, checked without torch or numpy (the
spec validates ``data.root`` with it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Where one CIFAR variant keeps its files and labels."""

    title: str
    subdir: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    expected: str  # human description of the expected files, for error messages


LAYOUTS: dict[str, Layout] = {
    "cifar10": Layout(
        "CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
        "batches.meta", b"labels", b"label_names", 10, "data_batch_1..5 and test_batch",
    ),
    "cifar100": Layout(
        "CIFAR-100", "cifar-100-python", ("train",), "test", "meta", b"fine_labels", b"fine_label_names", 100,
        "train and test",
    ),
}


def layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"{name!r} is not a CIFAR data set (expected one of {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


def required_files(lay: Layout) -> tuple[str, ...]:
    return (*lay.train_files, lay.test_file)


def find_batch_dir(name: str, root: str | Path) -> Path | None:
    """The folder under `root` (root itself, or root/<subdir>) holding all batches, or None."""
    lay = layout(name)
    for cand in (Path(root), Path(root) / lay.subdir):
        if all((cand / f).is_file() for f in required_files(lay)):
            return cand
    return None


def check_cifar_root(name: str, root: str) -> str | None:
    """None if `root` holds the `name` batches, else a one-line message saying what is missing."""
    lay = layout(name)
    hint = f"(expected {lay.expected} in python-pickle layout, or a {lay.subdir}/ folder)"
    root_p = Path(root)
    if not root_p.is_dir():
        return f"data.root: {str(root)!r} is not an existing directory {hint}"
    if find_batch_dir(name, root_p) is not None:
        return None
    for cand in (root_p, root_p / lay.subdir):
        present = [f for f in required_files(lay) if (cand / f).is_file()]
        if present:
            missing = [f for f in required_files(lay) if f not in present]
            return f"data.root: {str(cand)!r} has {lay.title} batches but lacks {', '.join(missing)} {hint}"
    return f"data.root: {str(root)!r} has no {lay.title} batches {hint}"
