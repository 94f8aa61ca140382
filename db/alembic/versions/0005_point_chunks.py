"""Running runs' points as columnar blocks too: point_blocks keyed by (run_id, last_step), with a measured mask.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

A run may now have several blocks: a sealed run one, a running run a chunk per ``db.blocks.CHUNK_POINTS`` points
written (merged as they add up), so its points read from blocks except the few after them. ``measured`` (bit i: metric
i of POINT_METRICS is non-NULL in the block) lets the runs table skip a metric a run never measured. The upgrade
replaces the table and builds every run's blocks from its rows (``db.blocks.build_all``, of the code that runs it:
a later revision that changes the point columns or this table must turn this backfill off and rebuild the blocks
itself); 1,000 runs × 1,000 points: 3.5 CPU s. The downgrade keeps the blocks of sealed runs (0004 had no others).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db import blocks

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = ("completed", "diverged")
"""db.models.SEALED_STATUSES as of this revision."""


def _fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_point_blocks_run_id_runs"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.drop_table("point_blocks")
    op.create_table(
        "point_blocks",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("measured", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _fk(),
        sa.PrimaryKeyConstraint("run_id", "last_step", name=op.f("pk_point_blocks")),
    )
    blocks.build_all(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    kept = bind.execute(sa.text(  # a sealed run's one block; a running run's chunks are not 0004's
        "SELECT b.run_id, b.n_points, b.last_step, b.data FROM point_blocks b JOIN runs r ON r.id = b.run_id "
        f"WHERE r.status IN {SEALED!r}")).all()
    op.drop_table("point_blocks")
    table = op.create_table(
        "point_blocks",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _fk(),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_point_blocks")),
    )
    if kept:
        op.bulk_insert(table, [{"run_id": r, "n_points": n, "last_step": s, "data": d} for r, n, s, d in kept])
