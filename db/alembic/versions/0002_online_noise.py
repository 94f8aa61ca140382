"""Online noise scale in the trajectory: points.noise_trace, points.grad_sq, points.noise_scale.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The two-batch estimate of tr Σ, ‖∇L‖² and their ratio B_simple (docs/theory.md §2), logged with each point when
``[diagnostics] online_noise = true``. Nullable: NULL means not measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("noise_trace", "grad_sq", "noise_scale")


def upgrade() -> None:
    with op.batch_alter_table("points") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("points") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
