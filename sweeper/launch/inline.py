"""Run a study's trials one after another in this process, into the database — no Ray.

For small studies in notebooks and tests (the checks' examples): the same trial code and the same writer as a Ray
launch, without the cluster. Unfinished runs of an existing identical study are run again (idempotent writes).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.writer import ensure_runs, ensure_study, update_run, update_study, write_diagnostics, write_points
from sweeper.expand import expand
from sweeper.reporter import ListReporter
from sweeper.spec import StudySpec
from sweeper.train.loop import run_trial


def run_inline(spec: StudySpec, engine: Engine) -> dict[str, str]:
    """Run every trial of ``spec`` into the database at ``engine`` (at head); returns ``{trial_id: status}``."""
    trials = expand(spec)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        run_ids = ensure_runs(session, study, [t.model_dump(mode="json") for t in trials])
        study_id = study.id
    statuses = {}
    for trial in trials:
        run_id = run_ids[trial.trial_id]
        started = dt.datetime.now(dt.timezone.utc)
        reporter = ListReporter()
        result = run_trial(trial, reporter)
        with Session(engine) as session, session.begin():
            write_points(session, run_id, result.points)
            write_diagnostics(session, run_id, reporter.diagnostics)
            update_run(session, run_id, status=result.status, steps_done=result.steps_done, device=result.device,
                       diverged_step=result.diverged_step, started_at=started, attempts=1,
                       finished_at=dt.datetime.now(dt.timezone.utc))
        statuses[trial.trial_id] = result.status
    with Session(engine) as session, session.begin():
        update_study(session, study_id, status="completed")
    return statuses
