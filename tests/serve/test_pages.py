"""The HTML pages: each answers, shows what does not change, escapes every text, and says what is missing."""

from __future__ import annotations

import re
from html import escape as html_escape
from urllib.parse import quote

import pytest
from markupsafe import escape

from db.engine import open_db
from db.queries import runs_frame
from sweeper.report.spec_toml import full_toml, set_fields_toml
from sweeper.serve import create_app
from tests.helpers import make_spec
from tests.serve.conftest import EVIL, EVIL_TEXT, STUDY, TestClient
from tests.serve.synthetic import create_study, trial_configs


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def scripts(html: str) -> list[str]:
    """Every <script> tag: the pages load their code from /static only (no inline script with data)."""
    return re.findall(r"<script[^>]*>", html)


def test_studies_page(client):
    html = page(client, "/")
    assert scripts(html) == ['<script src="/static/dashboard.js">', '<script src="/static/studies.js">']


def test_study_page(client):
    html = page(client, f"/studies/{STUDY}")
    assert f'data-study="{STUDY}"' in html and "spec text" in html
    for control in ('name="metric"', 'name="x"', 'name="colour"', 'name="seeds"', 'name="logx"', 'name="logy"',
                    'id="where"', 'id="run-check"', "<option>lsr</option>", ">sde_time</option>"):
        assert control in html
    assert scripts(html) == ['<script src="/static/plotly.min.js">', '<script src="/static/dashboard.js">',
                             '<script src="/static/study.js">']


def test_study_page_shows_the_spec_as_toml(sqlite_url):
    """As the report shows it: the fields the study sets (TOML that launches the same study), then every field."""
    engine = open_db(sqlite_url, create=True)
    spec = make_spec(name="tomlish", sweep={"batch_size": [8], "lr": [0.1, 0.2]}).model_dump(mode="json")
    create_study(engine, "tomlish", trial_configs([0.1], [1], [0]), spec=spec)
    html = page(TestClient(create_app(engine)), "/studies/tomlish")
    set_fields = set_fields_toml(spec)
    assert set_fields and "lr = [0.1, 0.2]" in set_fields and html_escape(set_fields) in html
    assert "Every field, defaults included" in html and html_escape(full_toml(spec)) in html
    engine.dispose()


def test_run_page_shows_config_status_and_error(client, engine):
    runs = runs_frame(engine, STUDY)
    failed = runs[runs.status == "failed"].iloc[0]
    html = page(client, f"/runs/{int(failed.run_id)}")
    assert 'class="badge failed"' in html and "RuntimeError: boom" in html
    assert "lr <strong>0.2</strong>" in html and "kappa <strong>2</strong>" in html  # the hyperparameters set
    assert "beta1" not in html.split('class="hparams"')[1].split("</span>")[0]  # not those unset (SGD)
    assert f"trial_id = &#34;{failed.trial_id}&#34;" in html  # the config as TOML
    assert f'href="/studies/{STUDY}"' in html


def test_everything_is_escaped(client, engine):
    html = page(client, f"/studies/{quote(EVIL, safe='')}")
    assert EVIL not in html and escape(EVIL) in html
    assert "<script>alert" not in html and "&lt;/script&gt;&lt;script&gt;alert(" in html  # the spec's note
    evil_run = int(runs_frame(engine, EVIL).run_id.iloc[0])
    html = page(client, f"/runs/{evil_run}")
    assert "<script>alert" not in html and "&lt;/script&gt;&lt;script&gt;alert(" in html  # config and trial id
    assert html.count("<script") == 3
    runs = runs_frame(engine, STUDY)
    failed = int(runs.loc[runs.status == "failed", "run_id"].iloc[0])
    assert escape(EVIL_TEXT) in page(client, f"/runs/{failed}")  # the run's error text


@pytest.mark.parametrize(("path", "words"), [
    ("/studies/nope", "no study named &#39;nope&#39;"),
    ("/runs/424242", "no run with id 424242"),
    ("/runs/<b>", "no run with id &#39;&lt;b&gt;&#39;"),
    ("/elsewhere", "no page at /elsewhere"),
])
def test_unknown_pages_are_404_with_the_message(client, path, words):
    html = page(client, path, 404)
    assert words in html and 'role="alert"' in html


def test_static_files(client):
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()
    for name in ("dashboard.js", "study.js", "run.js", "studies.js", "dashboard.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
