#!/usr/bin/env python
"""Trials per hour of the same studies launched unpacked (``--pack 1``), packed (``--pack auto``), and the bare
vectorized ceiling; and the fixed overhead a trial pays on Ray, in CPU seconds.

    python bench/bench_throughput.py [--study linreg|mlp|all] [--trials 64] [--repeats 1]

Studies (generated, ``--trials`` each; every trial shares one pack key, so ``auto`` may pack them all):

* ``linreg``: SGD on linear regression (d = 16, n = 4096), B = 8, 8 epochs, 8 learning rates × seeds;
* ``mlp``: SGD on an MNIST-1D MLP 40-64-64-10, B = 32, 12 epochs, 4 learning rates × 2 weight decays × seeds,
  1 024 train and test examples evaluated per point (as the examples do; evaluating all 5 000 at every 0.25 epoch
  is ≈ 5× the training's FLOPs, the same packed or not, and then measures evaluation rather than packing);
  both about 1 CPU second of training per trial unpacked.

Modes, interleaved so that the host's load hits them alike, each in a fresh subprocess:

* **ray --pack 1 / --pack auto**: ``launch_study`` on a fresh local Ray (2 CPUs) into a temporary SQLite file.
  CPU = the driver's ``process_time`` plus every Ray process's utime + stime (``/proc``, sampled every 100 ms by
  the parent: ``bench_launch_overhead.TreeSampler``); trials/h from the wall time of the launch.
* **cluster --pack 1 / --pack auto**: the same launch against a Ray that is already running (``--address``, as on a
  cluster): the bench starts one head (``ray start --head --block``, 2 CPUs, workers at nice 0) for all these
  launches. Its processes' CPU during the launch (their increase) counts with the driver's; Ray's own start-up
  (≈ 8–10 s wall, once per cluster, not per study) does not.
* **ceiling**: the same trials as packs (``packs(trials, "auto")``) run in one process by ``PackedTrial``, no Ray,
  no database: what a vectorized loop costs.
* **inline --pack 1**: ``run_inline(pack=1)``: every trial's training, unpacked, one process, no Ray.

Whole-launch ratios are stated both ways: cold (each launch starts its own Ray: what a laptop user pays once per
``sweeper launch``) and on a running cluster (what a study costs where Ray is up).

Marginal trials/h: the wall time of N against N/2 trials, per extra trial, for each mode (the ≈ 7–8 s it takes a
launch to start Ray and its first workers cancels out), so that the ratio says what packing does to a study
long enough for that start-up not to matter.

Per-trial fixed overhead = (CPU of the ``--pack 1`` launch of N trials − that of N/2 trials)/(N/2) − inline
training CPU per trial: the marginal cost of one more trial on Ray beyond its training, with Ray's per-launch
start-up (≈ 11 CPU s: two worker start-ups, Ray's daemons) cancelled out. Stated per trial and as a share of a
1-CPU-second trial. CPU seconds are robust to a busy host; wall times (and so trials/h) are not.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_launch_overhead import PR_SET_CHILD_SUBREAPER, TreeSampler, _reap_all, run_sampled  # noqa: E402

from sweeper.testing.ray_head import RayHead, ray_head  # noqa: E402


def study(name: str, trials: int) -> dict:
    """The study spec (a dict) with ``trials`` trials."""
    if name == "linreg":
        lrs = [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2]
        base = {"data": {"name": "linreg", "n_train": 4096, "dim": 16, "condition": 10.0, "noise": 1.0},
                "model": {"name": "linear"}, "sweep": {"batch_size": [8], "lr": lrs},
                "log": {"every_epochs": 0.1}, "budget": {"epochs": 8}}
    else:
        lrs = [0.02, 0.05, 0.1, 0.2]
        base = {"data": {"name": "mnist1d"}, "model": {"name": "mlp", "width": 64, "depth": 2},
                "sweep": {"batch_size": [32], "lr": lrs, "weight_decay": [0.0, 1e-4]},
                "log": {"every_epochs": 0.25, "eval_samples": 1024}, "budget": {"epochs": 12}}
    per_seed = len(lrs) * len(base["sweep"].get("weight_decay", [0.0]))
    return base | {"name": f"throughput-{name}-{trials}", "seeds": list(range(max(1, trials // per_seed))),
                   "device": "cpu", "optimizer": {"name": "sgd"}}


def child(mode: str, spec_json: str, address: str | None = None) -> dict:
    """Subprocess body: one mode on one study; returns its figures."""
    from sweeper.expand import expand
    from sweeper.spec import parse_spec

    spec = parse_spec(json.loads(spec_json))
    trials = expand(spec)
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if mode.startswith(("ray", "cluster")):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            from sweeper.launch.runner import LaunchOptions, launch_study

            pack = 1 if mode.endswith("-1") else "auto"
            outcome = launch_study(spec, LaunchOptions(db_url=f"sqlite:///{tmp}/b.db", storage=f"{tmp}/ray",
                                                       progress=False, pack=pack, address=address,
                                                       ray_init_kwargs={} if address else {"num_cpus": 2}))
            assert outcome.ok, outcome
        elif mode == "inline-1":
            from db.engine import open_db
            from sweeper.launch.inline import run_inline

            run_inline(spec, open_db(f"sqlite:///{tmp}/b.db", create=True), pack=1)
        else:
            import torch

            from sweeper.train.pack import ListPackReporter, PackedTrial, packs

            torch.set_num_threads(1)
            for group in packs(trials, "auto"):
                PackedTrial(group).run(ListPackReporter())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if mode.startswith(("ray", "cluster")):
            _reap_all()
    return {"trials": len(trials), "cpu": cpu, "wall": wall}


def run(mode: str, spec: dict, cluster: RayHead) -> dict:
    """One mode in a fresh subprocess; CPU includes its descendants and, on a cluster, what the head spent."""
    args = ["--child", mode, "--spec-json", json.dumps(spec)]
    if mode.startswith("cluster"):
        head = TreeSampler(cluster.pid)
        time.sleep(0.3)
        before = dict(head.last)
        result, by_kind = run_sampled(__file__, [*args, "--address", cluster.address])
        head.stop()
        result["cpu"] += sum(cpu - before.get(key, 0.0) for key, cpu in head.last.items())
    else:
        result, by_kind = run_sampled(__file__, args)
    result["cpu"] += sum(v for k, v in by_kind.items() if not k.startswith("processes_"))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=("linreg", "mlp", "all"), default="all")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spec-json", help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.spec_json, args.address)))
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # the head's daemons stay ours
    names = ("linreg", "mlp") if args.study == "all" else (args.study,)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; medians of {args.repeats}")
    head = f"{'study':<8} {'mode':<14} {'trials':>6} {'CPU s':>8} {'CPU s/trial':>11} {'wall s':>7} {'trials/h':>9}"
    print(head)
    modes = ("inline-1", "ray-1", "ray-auto", "cluster-1", "cluster-auto", "ceiling", "ray-1-half", "ray-auto-half")
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # a driver given HOST:PORT sends the head's token
    with ray_head(cpus=2) as cluster:
        for name in names:
            full, half = study(name, args.trials), study(name, args.trials // 2)
            rows: dict[str, list[dict]] = {}
            for _ in range(args.repeats):
                for mode in modes:
                    spec = half if mode.endswith("-half") else full
                    rows.setdefault(mode, []).append(run(mode.removesuffix("-half"), spec, cluster))
            report(name, {m: {k: statistics.median(r[k] for r in rs) for k in ("trials", "cpu", "wall")}
                          for m, rs in rows.items()})


def report(name: str, med: dict[str, dict[str, float]]) -> None:
    """Print one study's rows (medians) and its ratios."""
    for mode, r in med.items():
        print(f"{name:<8} {mode:<14} {r['trials']:>6.0f} {r['cpu']:>8.1f} {r['cpu'] / r['trials']:>11.3f} "
              f"{r['wall']:>7.1f} {3600 * r['trials'] / r['wall']:>9.0f}")
    per_hour = {m: 3600 * r["trials"] / r["wall"] for m, r in med.items()}
    extra = med["ray-1"]["trials"] - med["ray-1-half"]["trials"]
    marginal_wall = {m: (med[m]["wall"] - med[f"{m}-half"]["wall"]) / extra for m in ("ray-1", "ray-auto")}
    marginal = (med["ray-1"]["cpu"] - med["ray-1-half"]["cpu"]) / extra
    overhead = marginal - med["inline-1"]["cpu"] / med["inline-1"]["trials"]
    print(f"{name}: trials/h packed/unpacked: on a running cluster "
          f"{per_hour['cluster-auto'] / per_hour['cluster-1']:.1f}×, cold (the launch starts Ray) "
          f"{per_hour['ray-auto'] / per_hour['ray-1']:.1f}×, at the margin (N vs N/2) "
          f"{marginal_wall['ray-1'] / marginal_wall['ray-auto']:.1f}×; ceiling/unpacked "
          f"{per_hour['ceiling'] / per_hour['cluster-1']:.1f}×")
    on_cluster = med["cluster-1"]["cpu"] / med["cluster-auto"]["cpu"]
    cold = med["ray-1"]["cpu"] / med["ray-auto"]["cpu"]
    print(f"{name}: CPU per trial unpacked/packed: on a cluster {on_cluster:.1f}×, cold {cold:.1f}×; "
          f"per-trial fixed overhead on Ray = {overhead:.3f} CPU s ({100 * overhead:.0f}% of a 1-CPU-second trial)")


if __name__ == "__main__":
    main()
