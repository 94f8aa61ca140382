"""The results database of sweeper: SQLAlchemy models, Alembic migrations, the write path and the read API.

Modules, one job each:

* :mod:`db.models` — the schema (studies, runs, points, diagnostics, verdicts) as typed declarative models;
* :mod:`db.types` — portable column types (NaN/±inf floats, strict JSON, UTC timestamps);
* :mod:`db.connection` — ``resolve_url`` / ``make_engine`` / ``redact`` (URL defaults, SQLite pragmas);
* :mod:`db.engine` — ``open_db``: an engine whose schema is at this code's head revision (the gate);
* :mod:`db.migrate` — ``upgrade`` / ``downgrade`` / ``current`` / ``head`` from the installed package;
* :mod:`db.writer` — batched, idempotent writes used by the driver's Tune callback;
* :mod:`db.queries` — DataFrames for notebooks, checks and the CLI;
* :mod:`db.rows` — plain rows without pandas (the CLI's ``studies``, ``runs``, ``show``), under ``db.queries``;
* :mod:`db.columnar` — a SELECT's numeric columns as numpy arrays (ADBC on PostgreSQL), under ``db.queries``;
* :mod:`db.errors` — the exceptions, with messages fit for users.
"""
