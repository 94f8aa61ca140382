"""The results schema: SQLAlchemy 2.0 typed declarative models.

``studies`` 1─n ``runs`` 1─n ``points`` (one row per logged step) and ``diagnostics`` (one row per step and kind);
``studies`` 1─n ``verdicts``; a run's points are also kept as blocks in ``point_blocks`` (a derived copy that reads
fast, one block per sealed run: :mod:`db.blocks`). Deleting a study deletes its runs, points,
blocks, diagnostics and verdicts (ON DELETE CASCADE).
Every float column is a :class:`~db.types.PortableFloat` (NaN/±inf round-trip; NULL means "not measured"), every
JSON column a :class:`~db.types.PortableJSON`. Status-like columns are strings with CHECK constraints, not native
enums, so adding a value is a one-line migration on both engines.

The schema is created by the Alembic migrations in ``db/alembic/versions`` (never by ``metadata.create_all`` in
production); ``tests/db`` checks that these models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import PortableFloat, PortableJSON, UTCDateTime, utcnow

__all__ = [
    "Base",
    "Study",
    "Run",
    "Point",
    "PointBlock",
    "Diagnostic",
    "Verdict",
    "STUDY_STATUSES",
    "RUN_STATUSES",
    "SEALED_STATUSES",
    "VERDICT_VALUES",
    "POINT_FIELDS",
    "POINT_METRICS",
    "RUN_HPARAMS",
    "HEARTBEAT_S",
    "HEARTBEAT_GRACE_S",
]

STUDY_STATUSES = ("running", "completed", "failed", "interrupted")
RUN_STATUSES = ("pending", "running", "completed", "failed", "diverged")
SEALED_STATUSES = ("completed", "diverged")
"""Run statuses that nothing reopens (``sweeper resume`` continues pending/running runs, ``--retry-failed`` failed
ones): a run in one has its points also as one block in ``point_blocks`` (:mod:`db.blocks`)."""
VERDICT_VALUES = ("CONFIRMED", "REFUTED", "INCONCLUSIVE")

HEARTBEAT_S = 30.0
"""A running study's driver writes ``studies.heartbeat_at`` at most this often (seconds)."""
HEARTBEAT_GRACE_S = 3 * HEARTBEAT_S
"""A ``running`` study whose heartbeat is older than this (or missing) is read as ``interrupted``: its driver died."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


_HPARAM = {"hparam": True}
"""``info`` of the ``runs`` columns that are hyperparameters (RUN_HPARAMS is read from it)."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable names for migrations, batch mode on SQLite)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    def as_dict(self) -> dict[str, Any]:
        """The row's column values by column name."""
        return {c.key: getattr(self, c.key) for c in sa.inspect(type(self)).column_attrs}

    def __repr__(self) -> str:
        keys = [c.name for c in self.__table__.primary_key.columns]  # type: ignore[attr-defined]
        ident = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys)
        return f"{type(self).__name__}({ident})"


class Study(Base):
    """One sweep: its spec, the code that ran it, and the Ray cluster it ran on."""

    __tablename__ = "studies"
    __table_args__ = (sa.CheckConstraint(_in("status", STUDY_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    spec_hash: Mapped[str] = mapped_column(sa.String(64))
    package_version: Mapped[str] = mapped_column(sa.String(64))
    git_commit: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    ray_nodes: Mapped[int | None] = mapped_column(sa.Integer)
    ray_cpus: Mapped[float | None] = mapped_column(PortableFloat)
    ray_gpus: Mapped[float | None] = mapped_column(PortableFloat)
    storage: Mapped[str | None] = mapped_column(sa.Text)
    """Ray Tune storage root holding the study's experiment (checkpoints), used by ``sweeper resume``."""
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """When the driver running the study last showed it was alive (every HEARTBEAT_S while it runs)."""

    runs: Mapped[list[Run]] = relationship(back_populates="study", passive_deletes=True)
    verdicts: Mapped[list[Verdict]] = relationship(back_populates="study", passive_deletes=True)


class Run(Base):
    """One trial of a study: typed hyperparameters, the full config, and how it went."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "trial_id"),
        sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        sa.Index(None, "study_id", "status"),
        sa.Index(None, "study_id", "batch_size", "lr", "weight_decay"),
        sa.Index(None, "optimizer", "model", "dataset"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    trial_id: Mapped[str] = mapped_column(sa.String(64))
    trial_index: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")

    optimizer: Mapped[str] = mapped_column(sa.String(32), info=_HPARAM)
    model: Mapped[str] = mapped_column(sa.String(64), info=_HPARAM)
    dataset: Mapped[str] = mapped_column(sa.String(64), info=_HPARAM)
    batch_size: Mapped[int] = mapped_column(sa.Integer, info=_HPARAM)
    lr: Mapped[float] = mapped_column(PortableFloat, info=_HPARAM)
    weight_decay: Mapped[float] = mapped_column(PortableFloat, info=_HPARAM)
    svag_l: Mapped[float] = mapped_column(PortableFloat, info=_HPARAM)
    seed: Mapped[int] = mapped_column(sa.Integer, info=_HPARAM)
    momentum: Mapped[float | None] = mapped_column(PortableFloat, info=_HPARAM)
    beta1: Mapped[float | None] = mapped_column(PortableFloat, info=_HPARAM)
    beta2: Mapped[float | None] = mapped_column(PortableFloat, info=_HPARAM)
    eps: Mapped[float | None] = mapped_column(PortableFloat, info=_HPARAM)
    scaling_rule: Mapped[str | None] = mapped_column(sa.String(16), info=_HPARAM)
    kappa: Mapped[float | None] = mapped_column(PortableFloat, info=_HPARAM)
    config: Mapped[dict[str, Any]] = mapped_column(PortableJSON)

    host: Mapped[str | None] = mapped_column(sa.String(255))
    node_id: Mapped[str | None] = mapped_column(sa.String(64))
    device: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    wall_seconds: Mapped[float | None] = mapped_column(PortableFloat)
    steps_done: Mapped[int | None] = mapped_column(sa.Integer)
    diverged_step: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)

    study: Mapped[Study] = relationship(back_populates="runs")


class Point(Base):
    """One trajectory point of a run at raw optimizer step ``step``; every metric is optional."""

    __tablename__ = "points"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    effective_step: Mapped[float | None] = mapped_column(PortableFloat)
    epoch: Mapped[float | None] = mapped_column(PortableFloat)
    sde_time: Mapped[float | None] = mapped_column(PortableFloat)
    lr: Mapped[float | None] = mapped_column(PortableFloat)
    weight_decay: Mapped[float | None] = mapped_column(PortableFloat)
    train_loss: Mapped[float | None] = mapped_column(PortableFloat)
    train_acc: Mapped[float | None] = mapped_column(PortableFloat)
    test_loss: Mapped[float | None] = mapped_column(PortableFloat)
    test_acc: Mapped[float | None] = mapped_column(PortableFloat)
    weight_norm: Mapped[float | None] = mapped_column(PortableFloat)
    effective_lr: Mapped[float | None] = mapped_column(PortableFloat)
    angular_update: Mapped[float | None] = mapped_column(PortableFloat)
    grad_norm: Mapped[float | None] = mapped_column(PortableFloat)
    noise_trace: Mapped[float | None] = mapped_column(PortableFloat)
    grad_sq: Mapped[float | None] = mapped_column(PortableFloat)
    noise_scale: Mapped[float | None] = mapped_column(PortableFloat)


class PointBlock(Base):
    """Some of a run's points (every POINT_FIELDS column, by step) as one Arrow IPC stream: a derived copy of its
    rows of ``points`` after its previous block, up to ``last_step``, that reads without a Python object per value
    (:mod:`db.blocks` writes and decodes it and states what the blocks of a run hold)."""

    __tablename__ = "point_blocks"

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True,
                                        autoincrement=False)
    last_step: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    """The block's last step."""
    n_points: Mapped[int] = mapped_column(sa.Integer)
    measured: Mapped[int] = mapped_column(sa.Integer)
    """Bit i set when metric i (POINT_METRICS order) is non-NULL in some point of the block."""
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


POINT_METRICS: tuple[str, ...] = tuple(c.name for c in Point.__table__.columns if not c.primary_key)
"""The float columns of ``points`` besides the key ``(run_id, step)``, in table order."""
POINT_FIELDS: tuple[str, ...] = ("step", *POINT_METRICS)
"""The keys of a point as a trial reports it (``sweeper.reporter.Report.points``)."""
RUN_HPARAMS: tuple[str, ...] = tuple(c.name for c in Run.__table__.columns if c.info.get("hparam"))
"""The typed hyperparameter columns of ``runs`` (the rest of a trial's config is in ``runs.config``), in table
order: what ``TrialConfig.hyperparameters()`` returns and ``db.writer.ensure_runs`` stores."""


class Diagnostic(Base):
    """One diagnostic of a run at a step: a scalar ``value``, a JSON ``summary`` of scalars, an .npy ``payload``."""

    __tablename__ = "diagnostics"
    __table_args__ = (sa.Index(None, "run_id", "kind", "step"),)

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    wall_seconds: Mapped[float | None] = mapped_column(PortableFloat)
    value: Mapped[float | None] = mapped_column(PortableFloat)
    summary: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    payload: Mapped[bytes | None] = mapped_column(sa.LargeBinary)


class Verdict(Base):
    """The outcome of one check (hypothesis test) on a study."""

    __tablename__ = "verdicts"
    __table_args__ = (
        sa.CheckConstraint(_in("verdict", VERDICT_VALUES), name="verdict"),
        sa.Index(None, "study_id", "check"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    check: Mapped[str] = mapped_column(sa.String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    verdict: Mapped[str] = mapped_column(sa.String(16))
    statistic: Mapped[float | None] = mapped_column(PortableFloat)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    study: Mapped[Study] = relationship(back_populates="verdicts")
