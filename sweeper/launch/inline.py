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
from sweeper.train.pack import ListPackReporter, PackedTrial, packs


def run_inline(spec: StudySpec, engine: Engine, pack: int | str = "auto") -> dict[str, str]:
    """Run every trial of ``spec`` into the database at ``engine`` (at head), packed as ``pack`` says (``"auto"``,
    or at most N trials per pack: ``sweeper.train.pack.packs``); returns ``{trial_id: status}``."""
    trials = expand(spec)
    with Session(engine) as session, session.begin():
        study = ensure_study(session, spec.name, spec.model_dump(mode="json"))
        run_ids = ensure_runs(session, study, list(trials))
        study_id = study.id
    statuses: dict[str, str] = {}
    for group in packs(trials, pack):
        started = dt.datetime.now(dt.timezone.utc)
        if len(group) == 1:
            reporter = ListReporter()
            results = {group[0].trial_id: (run_trial(group[0], reporter), reporter.diagnostics)}
        else:
            packed = ListPackReporter()
            results = {tid: (r, packed.diagnostics(tid)) for tid, r in PackedTrial(group).run(packed).items()}
        with Session(engine) as session, session.begin():
            for trial_id, (result, diagnostics) in results.items():
                run_id = run_ids[trial_id]
                write_points(session, run_id, result.points)
                write_diagnostics(session, run_id, diagnostics)
                update_run(session, run_id, status=result.status, steps_done=result.steps_done,
                           device=result.device, diverged_step=result.diverged_step, started_at=started,
                           attempts=1, finished_at=dt.datetime.now(dt.timezone.utc))
                statuses[trial_id] = result.status
    with Session(engine) as session, session.begin():
        update_study(session, study_id, status="completed")
    return statuses
