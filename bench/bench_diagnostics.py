"""Cost of the diagnostics: a trial with every diagnostic at its default cadence against the same trial without.

    python bench/bench_diagnostics.py [--device cpu|cuda] [--epochs 40] [--repeats 2]

Per case: wall seconds of the trial without diagnostics and with ``[diagnostics.noise]``, ``[diagnostics.covariance]``,
``[diagnostics.sharpness]`` and ``[diagnostics.trajectory]`` at their defaults (median of ``--repeats``), the ratio
(target ≤ 1.10), each diagnostic's share from its stored wall time, and the time of one covariance spectrum from
n = 512 per-example gradients against one training epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sweeper.expand import expand
from sweeper.reporter import ListReporter
from sweeper.spec import parse_spec
from sweeper.testing.fake_cifar import write_fake_cifar
from sweeper.train.loop import Trial

DEFAULTS = {"noise": {}, "covariance": {}, "sharpness": {}, "trajectory": {}}


def timed_trial(raw: dict, data) -> tuple[float, ListReporter, Trial]:
    trial = Trial(expand(parse_spec(raw))[0], data=data)
    reporter = ListReporter()
    start = time.perf_counter()
    trial.run(reporter)
    return time.perf_counter() - start, reporter, trial


def case(raw: dict, repeats: int) -> dict:
    probe = Trial(expand(parse_spec(raw))[0])
    data = probe.data
    plain, diag, shares = [], [], defaultdict(list)
    for _ in range(repeats):
        plain.append(timed_trial(raw, data)[0])
        seconds, reporter, _ = timed_trial(raw | {"diagnostics": DEFAULTS}, data)
        diag.append(seconds)
        per_kind = defaultdict(float)
        for row in reporter.diagnostics:
            per_kind[row["kind"]] += row.get("wall_seconds") or 0.0
        for kind, s in per_kind.items():
            shares[kind].append(s)
    one_cov = parse_spec(raw | {"diagnostics": {"covariance": {"samples": 512}}})
    trial = Trial(expand(one_cov)[0], data=data)
    start = time.perf_counter()
    trial.diagnostics._covariance(0)
    cov_seconds = time.perf_counter() - start
    epoch_seconds = statistics.median(plain) / raw["budget"]["epochs"]
    return {"plain": statistics.median(plain), "diag": statistics.median(diag),
            "shares": {k: statistics.median(v) for k, v in shares.items()},
            "cov": cov_seconds, "epoch": epoch_seconds, "d": sum(p.numel() for p in trial.trainable)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=float, default=40.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = write_fake_cifar(Path(tempfile.mkdtemp()), "cifar10", n_train_per_batch=400, n_test=500)
    base = {"name": "bench", "device": args.device, "optimizer": {"name": "sgd", "momentum": 0.9},
            "log": {"every_epochs": 2.0, "eval_samples": 1000}}
    cases = {
        "MNIST-1D CNN (w32, d3, bn), B=64": base | {
            "data": {"name": "mnist1d"}, "model": {"name": "cnn", "width": 32, "depth": 3, "norm": "bn"},
            "sweep": {"batch_size": 64, "lr": 0.05}, "budget": {"epochs": args.epochs}},
        "PreResNet-20 x0.25, 2000 32x32 images, B=128": base | {
            "data": {"name": "cifar10", "root": str(root), "augment": False},
            "model": {"name": "preresnet", "depth": 20, "width": 0.25},
            "sweep": {"batch_size": 128, "lr": 0.05}, "budget": {"epochs": max(args.epochs / 4, 10)}},
    }
    print(f"{'case':46s} {'epochs':>6s} {'off s':>8s} {'on s':>8s} {'on/off':>7s}  shares of the added time (s)")
    rows = []
    for name, raw in cases.items():
        r = case(raw, args.repeats)
        shares = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["shares"].items()))
        print(f"{name:46s} {raw['budget']['epochs']:6.0f} {r['plain']:8.1f} {r['diag']:8.1f} "
              f"{r['diag'] / r['plain']:7.3f}  {shares}")
        rows.append((name, r))
    print()
    print(f"{'case':46s} {'d':>9s} {'cov n=512 s':>12s} {'epoch s':>8s} {'cov/epoch':>10s}")
    for name, r in rows:
        print(f"{name:46s} {r['d']:9d} {r['cov']:12.3f} {r['epoch']:8.3f} {r['cov'] / r['epoch']:10.3f}")


if __name__ == "__main__":
    main()
