"""Downsampling against a known series: every bucket's min and max kept, the length bounded by 2 per bucket,
non-finite values never drawn, log-x buckets geometric — on SQLite and PostgreSQL."""

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


@pytest.fixture
def stored(db_url: str):
    engine = open_db(db_url, create=True)
    trial = trial_configs([0.1], [1], [0])[0]
    run_id = create_study(engine, "known", [trial])[trial.trial_id]
    steps, y = series()
    writer.write_points(engine, run_id, [{"step": int(s), "epoch": s / 100, "test_loss": float(v)}
                                         for s, v in zip(steps, y, strict=True)]
                        + [{"step": N_POINTS, "epoch": N_POINTS / 100}])  # metric not measured: NULL
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


@pytest.mark.parametrize("log_x", [False, True])
@pytest.mark.parametrize("n", [7, 50])
def test_bucket_min_max_and_envelope(stored, n, log_x):
    engine, run_id = stored
    steps, y = series()
    with engine.connect() as conn:
        b = buckets.query(conn, [run_id], "epoch", "test_loss", n, log_x=log_x)
    span = (0.01 if log_x else 0.0, 10.0)  # x of every point with a finite x (the last has no test_loss)
    assert b.x_range == span
    want = expected(steps / 100, y, n, span, log_x)
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
    engine, run_id = stored
    steps, y = series()
    with engine.connect() as conn:
        b = buckets.query(conn, [run_id], "step", "test_loss", 4000)
    xs, ys = buckets.envelope(b)
    finite = np.isfinite(y)
    assert xs.tolist() == steps[finite].astype(float).tolist() and ys.tolist() == y[finite].tolist()


def test_no_runs_or_no_points(stored):
    engine, run_id = stored
    with engine.connect() as conn:
        assert buckets.query(conn, [], "step", "test_loss", 10).x_range is None
        assert buckets.query(conn, [run_id], "step", "grad_norm", 10).run_id.size == 0
    assert buckets.envelope(buckets.Buckets.empty(10))[0].size == 0
