"""Downsampling against a known series read from the database: every bucket's min and max kept, the length bounded
by 2 per bucket, non-finite values never drawn, log-x buckets geometric, an x that does not grow with the step
bucketed as well — on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from db import writer
from db.engine import open_db
from sweeper.serve import buckets
from tests.serve.synthetic import create_study, trial_configs

N_POINTS = 1000


def series() -> tuple[np.ndarray, np.ndarray]:
    """Steps 0…999 and a noisy decay with spikes at steps 137 (max) and 862 (min), NaN every 97th, inf at 500."""
    steps = np.arange(N_POINTS)
    rng = np.random.default_rng(0)
    y = np.exp(-steps / 300) + 0.05 * rng.standard_normal(N_POINTS)
    y[137], y[862] = 9.0, -4.0
    y[::97] = np.nan
    y[500] = np.inf
    return steps, y


def scrambled(step: int) -> float:
    """An x in [0.01, 10] that jumps about as the step grows (0.01 at step 1000)."""
    return (step * 7919 % 1000 + 1) / 100


@pytest.fixture
def stored(db_url: str):
    engine = open_db(db_url, create=True)
    trial = trial_configs([0.1], [1], [0])[0]
    run_id = create_study(engine, "known", [trial])[trial.trial_id]
    steps, y = series()
    writer.write_points(engine, run_id, [{"step": int(s), "epoch": s / 100, "effective_step": scrambled(s),
                                          "test_loss": float(v)} for s, v in zip(steps, y, strict=True)]
                        + [{"step": N_POINTS, "epoch": N_POINTS / 100,
                            "effective_step": scrambled(N_POINTS)}])  # metric not measured: NULL
    yield engine, run_id
    engine.dispose()


def expected(x: np.ndarray, y: np.ndarray, n: int, span: tuple[float, float],
             log_x: bool) -> dict[int, tuple[float, float, int, float]]:
    """{bucket: (min, max, count, mean)} over the finite points, ``n`` buckets equal in x (or ln x) over ``span``
    (``buckets.EDGE`` as documented)."""
    ok = np.isfinite(y) & (x > 0 if log_x else True)
    x, y = x[ok], y[ok]
    f = np.log if log_x else (lambda v: v)
    lo, hi = f(span[0]), f(span[1])
    b = np.floor((f(x) - lo) * (n / (hi - lo) * buckets.EDGE)).astype(int)
    return {int(k): (float(y[b == k].min()), float(y[b == k].max()), int((b == k).sum()), float(y[b == k].mean()))
            for k in np.unique(b)}


@pytest.mark.parametrize(("axis", "log_x"), [("epoch", False), ("epoch", True), ("effective_step", False)])
@pytest.mark.parametrize("n", [7, 50])
def test_bucket_min_max_and_envelope(stored, n, axis, log_x):
    engine, run_id = stored
    steps, y = series()
    b = buckets.reduce(buckets.read(engine, "known", axis, "test_loss"), n, log_x=log_x)
    x = steps / 100 if axis == "epoch" else np.array([scrambled(s) for s in steps])
    span = (0.01 if log_x or axis != "epoch" else 0.0, 10.0)  # x of every point with a finite x
    assert b.x_range == span
    want = expected(x, y, n, span, log_x)
    assert b.bucket.tolist() == sorted(want) and set(b.run_id.tolist()) == {run_id}
    extremes = zip(b.y_min.tolist(), b.y_max.tolist(), b.count.tolist(), strict=True)
    got = dict(zip(b.bucket.tolist(), extremes, strict=True))
    assert got == {k: v[:3] for k, v in want.items()}
    assert b.y_mean == pytest.approx([want[k][3] for k in b.bucket.tolist()])
    xs, ys = buckets.envelope(b)
    assert len(xs) == len(ys) <= 2 * n
    assert ys.max() == 9.0 and ys.min() == -4.0  # the spikes survive
    assert set(ys.tolist()) >= {v for lo, hi, _, _ in want.values() for v in (lo, hi)}
    assert np.isfinite(ys).all() and np.all(np.diff(xs) >= 0)


def test_all_points_kept_when_fewer_than_buckets(stored):
    engine, _ = stored
    steps, y = series()
    b = buckets.reduce(buckets.read(engine, "known", "step", "test_loss"), 4000)
    xs, ys = buckets.envelope(b)
    finite = np.isfinite(y)
    assert xs.tolist() == steps[finite].astype(float).tolist() and ys.tolist() == y[finite].tolist()


def test_no_runs_or_no_points(stored):
    engine, run_id = stored
    points = buckets.read(engine, "known", "step", "test_loss")
    assert buckets.reduce(points.of([]), 10).x_range is None
    assert buckets.reduce(points.of([run_id + 1]), 10).run_id.size == 0
    unmeasured = buckets.reduce(buckets.read(engine, "known", "step", "grad_norm"), 10)
    assert unmeasured.run_id.size == 0 and unmeasured.x_range == (0.0, N_POINTS)
    assert buckets.envelope(buckets.Buckets.empty(10))[0].size == 0


def test_only_the_chosen_runs_are_read(stored):
    engine, run_id = stored
    trial = trial_configs([0.2], [1], [0])[0]
    other = create_study(engine, "other", [trial])[trial.trial_id]
    writer.write_points(engine, other, [{"step": 5, "epoch": 50.0, "test_loss": 1.0}])
    assert buckets.read(engine, "other", "epoch", "test_loss").run_id.tolist() == [other]
    mine = buckets.read(engine, "known", "epoch", "test_loss", [run_id])
    assert len(mine.run_id) == N_POINTS + 1 and buckets.x_range(mine) == (0.0, 10.0)
