"""Initial schema: studies, runs, points, diagnostics, verdicts.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Constraint and index names are given in full, wrapped in ``op.f()`` so the models' naming convention (which
Alembic applies to operations) does not prefix them again. Types are frozen here as plain SQL types (``db.types``
only adds Python-side conversions): floats are DOUBLE (double precision), JSON is JSON on SQLite and JSONB on
PostgreSQL, timestamps carry a time zone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT: sa.Double[float] = sa.Double()
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

POINT_METRICS = (
    "effective_step",
    "epoch",
    "sde_time",
    "lr",
    "weight_decay",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "weight_norm",
    "effective_lr",
    "angular_update",
    "grad_norm",
)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("package_version", sa.String(64), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ray_nodes", sa.Integer(), nullable=True),
        sa.Column("ray_cpus", FLOAT, nullable=True),
        sa.Column("ray_gpus", FLOAT, nullable=True),
        sa.Column("storage", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_studies_name")),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'interrupted')", name=op.f("ck_studies_status")
        ),
    )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("optimizer", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("lr", FLOAT, nullable=False),
        sa.Column("weight_decay", FLOAT, nullable=False),
        sa.Column("svag_l", FLOAT, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("momentum", FLOAT, nullable=True),
        sa.Column("beta1", FLOAT, nullable=True),
        sa.Column("beta2", FLOAT, nullable=True),
        sa.Column("eps", FLOAT, nullable=True),
        sa.Column("scaling_rule", sa.String(16), nullable=True),
        sa.Column("kappa", FLOAT, nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("wall_seconds", FLOAT, nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=True),
        sa.Column("diverged_step", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_runs_study_id_studies"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("study_id", "trial_id", name=op.f("uq_runs_study_id_trial_id")),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'diverged')", name=op.f("ck_runs_status")
        ),
    )
    op.create_index(op.f("ix_runs_study_id_status"), "runs", ["study_id", "status"])
    op.create_index(
        op.f("ix_runs_study_id_batch_size_lr_weight_decay"), "runs", ["study_id", "batch_size", "lr", "weight_decay"]
    )
    op.create_index(op.f("ix_runs_optimizer_model_dataset"), "runs", ["optimizer", "model", "dataset"])

    op.create_table(
        "points",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(name, FLOAT, nullable=True) for name in POINT_METRICS),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_points")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_points_run_id_runs"), ondelete="CASCADE"),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "diagnostics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("wall_seconds", FLOAT, nullable=True),
        sa.Column("value", FLOAT, nullable=True),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "step", "kind", name=op.f("pk_diagnostics")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_diagnostics_run_id_runs"), ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_diagnostics_run_id_kind_step"), "diagnostics", ["run_id", "kind", "step"])

    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(100), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("statistic", FLOAT, nullable=True),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_verdicts_study_id_studies"), ondelete="CASCADE"
        ),
        sa.CheckConstraint("verdict IN ('CONFIRMED', 'REFUTED', 'INCONCLUSIVE')", name=op.f("ck_verdicts_verdict")),
    )
    op.create_index(op.f("ix_verdicts_study_id_check"), "verdicts", ["study_id", "check"])


def downgrade() -> None:
    op.drop_index(op.f("ix_verdicts_study_id_check"), table_name="verdicts")
    op.drop_table("verdicts")
    op.drop_index(op.f("ix_diagnostics_run_id_kind_step"), table_name="diagnostics")
    op.drop_table("diagnostics")
    op.drop_table("points")
    op.drop_index(op.f("ix_runs_optimizer_model_dataset"), table_name="runs")
    op.drop_index(op.f("ix_runs_study_id_batch_size_lr_weight_decay"), table_name="runs")
    op.drop_index(op.f("ix_runs_study_id_status"), table_name="runs")
    op.drop_table("runs")
    op.drop_table("studies")
