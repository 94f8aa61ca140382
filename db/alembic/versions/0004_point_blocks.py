"""Sealed runs' points as columnar blocks: point_blocks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

One row per run whose status is sealed (completed, diverged): its points as one LZ4-compressed Arrow IPC stream, a
derived copy of its rows of ``points`` that reads without a Python object per value (``db.blocks``). The table is
created empty: revision 0005 changes its layout and builds the blocks (it used to be built here, with ``db.blocks``
of the code that runs it, which now writes 0005's layout). A run without a block is read from its rows. The
downgrade drops the table (the rows hold everything).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "point_blocks",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_point_blocks_run_id_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_point_blocks")),
    )


def downgrade() -> None:
    op.drop_table("point_blocks")
