"""Study liveness: studies.heartbeat_at.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The driver running a study writes the time into ``heartbeat_at`` when it starts and then at most every
``HEARTBEAT_S``; a ``running`` study whose heartbeat is stale (or missing) is read as interrupted. Nullable: studies
written before this revision have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("heartbeat_at")
