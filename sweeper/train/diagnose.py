"""Diagnostics inside a trial, at the cadences of the spec's ``[diagnostics]``; rows for the ``diagnostics`` table.

Each diagnostic draws its examples from its own generator seeded by (trial seed, step, kind), so turning
diagnostics on or off never changes the training trajectory, and a restored trial recomputes them identically.
Each row carries its wall time (``wall_seconds``) so the overhead is visible per run.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from sweeper.diagnostics import (
    BatchGradStats,
    batch_grad,
    covariance_spectrum,
    hessian_trace,
    increment_spectrum,
    levy_area_test,
    long_lag_autocorrelation,
    msd_exponent,
    per_example_grads,
    random_directions,
    top_hessian_eigenvalue,
)
from sweeper.diagnostics.per_example import num_trainable
from sweeper.spec import (
    CovarianceDiagnostic,
    DiagnosticsSpec,
    NoiseDiagnostic,
    SharpnessDiagnostic,
    TrajectoryDiagnostic,
)
from sweeper.train.clock import Clock

FULL_DATASET_MAX_PARAMS = 20_000


PER_EXAMPLE_COST = 4.0
"""Cost of one per-example gradient (vmap) in batched example gradients, for the automatic cadence (measured on
CPU: ≈2 for a small PreResNet, ≈12 for a small 1-D CNN; bench/bench_diagnostics.py prints it)."""


def cadence_steps(clock: Clock, every_epochs: float | None, cost_examples: float = 0.0, budget: float = 0.02,
                  ) -> set[int]:
    """Raw steps of a diagnostic: at multiples of ``every_epochs`` SGD-equivalent epochs from step 0, and the
    last step. ``every_epochs=None``: the interval that spends ``budget`` of the training cost on a diagnostic
    costing ``cost_examples`` example gradients, from the first interval on (a run shorter than one interval
    gets one measurement, at its end)."""
    per_epoch = clock.total_steps / clock.total_epochs if clock.total_epochs else 1.0
    if every_epochs is None:
        every_epochs = cost_examples / (budget * clock.n_train)
        first = 1
    else:
        first = 0
    interval = max(every_epochs * per_epoch, 1.0)
    count = int(clock.total_steps / interval)
    return {min(round(k * interval), clock.total_steps) for k in range(first, count + 1)} | {clock.total_steps}


class Diagnostics:
    """Runs the configured diagnostics of one trial; ``due(step)`` lists what runs at a raw step."""

    def __init__(self, spec: DiagnosticsSpec, clock: Clock, model: torch.nn.Module, data, batch_size: int,
                 seed: int, trainable: list[torch.nn.Parameter]):
        self.spec, self.clock, self.model, self.data = spec, clock, model, data
        self.batch_size, self.seed, self.trainable = batch_size, seed, trainable
        self.schedule: dict[str, set[int]] = {}
        for kind, cost in self._costs().items():
            self.schedule[kind] = cadence_steps(clock, getattr(spec, kind).every_epochs, cost, spec.budget)
        if spec.covariance is not None and spec.covariance.full_dataset:
            d = num_trainable(model)
            if d > FULL_DATASET_MAX_PARAMS:
                raise ValueError(f"diagnostics.covariance.full_dataset needs a model with at most "
                                 f"{FULL_DATASET_MAX_PARAMS} parameters (this one has {d}); use samples = N instead")
        self.trajectory = _TrajectoryRecorder(spec.trajectory, clock, trainable) if spec.trajectory else None

    def _costs(self) -> dict[str, float]:
        """Estimated cost of each configured diagnostic, in example gradients (for the automatic cadence)."""
        spec = self.spec
        costs: dict[str, float] = {}
        if spec.noise is not None:
            costs["noise"] = self._noise_batches(spec.noise) * self.batch_size
        if spec.covariance is not None:
            n = self.data.n_train if spec.covariance.full_dataset else spec.covariance.samples
            costs["covariance"] = PER_EXAMPLE_COST * n
        if spec.sharpness is not None:
            cfg = spec.sharpness
            costs["sharpness"] = 2.0 * cfg.batch_size * (cfg.max_iterations + cfg.trace_samples)
        return costs

    def _noise_batches(self, cfg: NoiseDiagnostic) -> int:
        return cfg.batches or max(200, 12800 // self.batch_size)

    def steps(self) -> set[int]:
        """Every raw step at which a diagnostic (other than the per-step trajectory) runs."""
        return set().union(*self.schedule.values()) if self.schedule else set()

    def _generator(self, step: int, kind: str) -> torch.Generator:
        gen = torch.Generator(device=self.data.x_train.device)
        gen.manual_seed(zlib.crc32(f"{self.seed}/{step}/{kind}".encode()))
        return gen

    def _draw(self, n: int, gen: torch.Generator, replacement: bool = True) -> torch.Tensor:
        n_train = self.data.n_train
        if replacement:
            return torch.randint(n_train, (n,), generator=gen, device=self.data.x_train.device)
        return torch.randperm(n_train, generator=gen, device=self.data.x_train.device)[: min(n, n_train)]

    def run_due(self, step: int) -> list[dict[str, Any]]:
        rows = []
        for kind, steps in self.schedule.items():
            if step in steps:
                start = time.perf_counter()
                row = getattr(self, f"_{kind}")(step, getattr(self.spec, kind))
                row.update(step=step, kind=kind, wall_seconds=time.perf_counter() - start)
                rows.append(row)
        return rows

    def _noise(self, step: int, cfg: NoiseDiagnostic) -> dict[str, Any]:
        """m train-mode batch gradients at the run's batch size (the noise SGD feels; BN buffers untouched)."""
        b, m = self.batch_size, self._noise_batches(cfg)
        gen, stats = self._generator(step, "noise"), BatchGradStats(b)
        for _ in range(m):
            idx = self._draw(b, gen)
            stats.add(batch_grad(self.model, self.data.x_train[idx], self.data.y_train[idx], self.data.task))
        result = stats.result()
        summary = {k: float(v) for k, v in asdict(result).items() if np.ndim(v) == 0} | {"m": m, "batch_size": b}
        return {"value": summary.get("ratio"), "summary": summary}

    def _covariance(self, step: int, cfg: CovarianceDiagnostic) -> dict[str, Any]:
        n = self.data.n_train if cfg.full_dataset else cfg.samples
        idx = self._draw(n, self._generator(step, "covariance"), replacement=False)
        grads = per_example_grads(self.model, self.data.x_train[idx], self.data.y_train[idx], self.data.task)
        spectrum = covariance_spectrum(grads, top_k=cfg.top_k).to_dict()
        eigenvalues = np.asarray(spectrum.pop("eigenvalues"), dtype=np.float64)
        summary = {k: v for k, v in spectrum.items() if isinstance(v, (int, float, bool, str))}
        return {"value": summary["rank_over_d"], "summary": summary,
                "payload": eigenvalues}

    def _sharpness(self, step: int, cfg: SharpnessDiagnostic) -> dict[str, Any]:
        idx = self._draw(cfg.batch_size, self._generator(step, "sharpness"), replacement=False)
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        top = top_hessian_eigenvalue(self.model, x, y, self.data.task, tol=cfg.tolerance,
                                     max_iter=cfg.max_iterations, seed=step)
        summary = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in asdict(top).items()
                   if isinstance(v, (int, float, bool, np.floating))}
        if cfg.trace_samples:
            trace = hessian_trace(self.model, x, y, self.data.task, n_samples=cfg.trace_samples, seed=step)
            summary |= {"trace": float(trace.mean), "trace_stderr": float(trace.stderr)}
        return {"value": float(top.eigenvalue), "summary": summary}


class _TrajectoryRecorder:
    """Weights (the tracked set) projected on K fixed random unit directions every few steps inside a window."""

    def __init__(self, cfg: TrajectoryDiagnostic, clock: Clock, params: list[torch.nn.Parameter]):
        self.cfg, self.params = cfg, params
        per_epoch = clock.total_steps / clock.total_epochs if clock.total_epochs else 1.0
        self.start = round(cfg.start_epoch * per_epoch)
        self.end = clock.total_steps if cfg.end_epoch is None else min(round(cfg.end_epoch * per_epoch),
                                                                        clock.total_steps)
        d = sum(p.numel() for p in params)
        self.directions = random_directions(d, cfg.projections, cfg.seed, device=params[0].device)
        self.steps: list[int] = []
        self.values: list[torch.Tensor] = []
        self.flushed = 0
        self.seconds = 0.0  # recording time since the last flush

    def wants(self, step: int) -> bool:
        return self.start <= step <= self.end and (step - self.start) % self.cfg.every_steps == 0

    @torch.no_grad()
    def record(self, step: int) -> None:
        start = time.perf_counter()
        w = torch.cat([p.detach().reshape(-1) for p in self.params]).to(self.directions.dtype)
        self.values.append(self.directions @ w)
        self.steps.append(step)
        self.seconds += time.perf_counter() - start

    def flush(self) -> list[dict[str, Any]]:
        """The samples recorded since the last flush as one row (payload: (n, 1 + K) array of step, projections)."""
        if self.flushed == len(self.steps):
            return []
        chunk = slice(self.flushed, len(self.steps))
        values = torch.stack(self.values[chunk]).double().cpu().numpy()
        payload = np.column_stack([np.asarray(self.steps[chunk], dtype=np.float64), values])
        self.flushed, seconds, self.seconds = len(self.steps), self.seconds, 0.0
        return [{"step": self.steps[chunk.start], "kind": "trajectory", "value": float(len(payload)),
                 "payload": payload, "wall_seconds": seconds}]

    def statistics(self, step: int) -> list[dict[str, Any]]:
        """Non-equilibrium statistics over the whole window (docs/theory.md §5, §9), once it is complete."""
        if len(self.steps) < 64:
            return []
        start = time.perf_counter()
        traj = torch.stack(self.values).double().cpu().numpy()
        t = len(traj)
        spectrum = increment_spectrum(traj)
        acf = long_lag_autocorrelation(traj)
        msd = msd_exponent(traj, window=(1, max(2, t // 8)))
        levy = levy_area_test(traj)
        summary = {
            "samples": t, "low_freq_ratio": spectrum.low_freq_ratio, "low_freq_p": spectrum.p_value,
            "acf_fraction_outside": acf.fraction_outside, "acf_band": acf.band,
            "msd_exponent": msd.exponent, "msd_window_low": msd.window[0], "msd_window_high": msd.window[1],
            "levy_statistic": levy.statistic, "levy_z": levy.z_score, "levy_p": levy.p_value,
        }
        return [{"step": step, "kind": "trajectory_stats", "value": levy.p_value, "summary": summary,
                 "wall_seconds": time.perf_counter() - start}]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "values": torch.stack(self.values).cpu() if self.values else None,
                "flushed": self.flushed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.flushed = list(state["steps"]), state["flushed"]
        values = state["values"]
        self.values = [] if values is None else list(values.to(self.directions.device).unbind(0))
