"""What the plots show, against answers computed here from the stored points: seed bands, the scaling path's
tolerance band, diagnostics placed on the time axis, the B* prediction, colours."""

from __future__ import annotations

import numpy as np
import pytest

from db.queries import points_frame
from sweeper.checks import quantities
from sweeper.checks.base import StudyData
from sweeper.serve.colours import MISSING, palette
from tests.serve.conftest import DIAGNOSED, STUDY
from tests.serve.synthetic import B0, N_TRAIN

API = f"/api/studies/{STUDY}"


def test_seed_band_is_mean_and_sd_over_seeds(client, engine, run_ids):
    data = client.get(f"{API}/trajectories", params={"x": "step", "width": 100, "where": "lr = 0.05"}).json()
    (trace,) = data["traces"]  # lr = 0.05: κ = 1 of the lr0 = 0.05 path, seeds 0 and 1
    assert trace["seeds"] == 2 and sorted(trace["run_ids"]) == sorted(run_ids[k] for k in DIAGNOSED)
    pts = points_frame(engine, STUDY, trace["run_ids"])
    # 100 buckets over steps 0–490: two steps per bucket in places, so compare bucket by bucket
    by_bucket = np.floor(pts.step.to_numpy() * (100 / 490 * (1 - 1e-9))).astype(int)
    pts = pts.assign(bucket=by_bucket)
    per_run = pts.groupby(["bucket", "run_id"]).test_loss.mean().unstack()
    assert trace["y"] == pytest.approx(per_run.mean(axis=1).tolist())
    sd = per_run.std(axis=1, ddof=1).to_numpy()
    assert np.array(trace["hi"]) - np.array(trace["y"]) == pytest.approx(sd)
    assert np.array(trace["y"]) - np.array(trace["lo"]) == pytest.approx(sd)


def test_lines_keep_every_point_when_the_plot_is_wider(client, engine, run_ids):
    data = client.get(f"{API}/trajectories", params={"x": "sde_time", "seeds": "lines", "width": 400,
                                                     "where": f"run_id = {run_ids[0.1, 2.0, 1]}"}).json()
    (trace,) = data["traces"]
    pts = points_frame(engine, STUDY, [run_ids[0.1, 2.0, 1]])
    assert trace["x"] == pytest.approx(pts.sde_time.tolist()) and trace["y"] == pytest.approx(pts.test_loss.tolist())


def test_scaling_band_is_the_baseline_within_the_tolerance(client):
    data = client.get(f"{API}/scaling", params={"tolerance": 0.1}).json()
    path = data["path"]
    assert data["relative"] == 0.1 and path["baseline_kappa"] == 1.0 and path["axis"] == "sde_time"
    assert [t["name"] for t in path["traces"]] == ["κ = 1", "κ = 2"]
    base = np.array(path["traces"][0]["y"])
    assert np.array(path["band"]["lo"]) == pytest.approx(base - 0.1 * np.abs(base))
    assert np.array(path["band"]["hi"]) == pytest.approx(base + 0.1 * np.abs(base))


@pytest.mark.parametrize(("axis", "per_step"), [("step", 1.0), ("epoch", B0 / N_TRAIN), ("sde_time", 0.05)])
def test_diagnostics_sit_on_the_time_axis(client, run_ids, axis, per_step):
    data = client.get(f"{API}/diagnostics", params={"x": axis, "where": "lr = 0.05"}).json()
    (trace,) = [t for t in data["sharpness"]["lambda_max"] if t["run_ids"] == [run_ids[DIAGNOSED[0]]]]
    steps = np.array([0, 100, 245, 250, 490])  # 245 lies between the logged points 240 and 250
    assert trace["x"] == pytest.approx(steps * per_step)
    assert trace["y"] == pytest.approx(10 + steps / 1000)  # λ_max as written


def test_noise_panel_and_the_b_star_prediction(client, engine):
    noise = client.get(f"{API}/diagnostics").json()["noise"]
    assert {v for t in noise["g_over_n"] for v in t["y"]} == {0.5}
    assert {v for t in noise["b_simple"] for v in t["y"]} == {2 * B0}  # B·N/G with G/N = 0.5
    (prediction,) = noise["predictions"]  # only the lr0 = 0.05 path has noise on its base runs
    assert prediction["b0"] == B0 and prediction["b_star"] == pytest.approx(2 * B0 * 2)  # τ·B0·N/G, τ = 2
    (full,) = quantities.path_predictions(StudyData.load(engine, STUDY))
    assert prediction["b_star"] == pytest.approx(full.b_star)


def test_levy_table_and_spectra(client, run_ids):
    view = client.get(f"{API}/diagnostics").json()
    rows = {r["run_id"]: r for r in view["levy"]["table"]}
    first = rows[run_ids[DIAGNOSED[0]]]
    assert first["step"] == 490 and first["levy_z"] == 0.5
    spectra = client.get(f"{API}/covariance/{run_ids[DIAGNOSED[1]]}").json()["measurements"]
    assert spectra[0]["eigenvalues"] == pytest.approx(0.5 ** np.arange(8))
    assert len({m["colour"] for m in spectra}) == len(spectra)


def test_palette_orders_numbers_and_greys_missing():
    colours = palette([4.0, 1.0, None, 2.0, "adam"])
    assert list(colours) == [1.0, 2.0, 4.0, "adam", None] and colours[None] == MISSING
    assert len(set(colours.values())) == 5
