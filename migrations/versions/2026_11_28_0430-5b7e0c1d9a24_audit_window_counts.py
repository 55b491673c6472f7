"""Audit window counts: failed logins for unknown usernames are counted per hour and
written to the chain as one entry per hour, instead of one entry each.

Revision ID: 5b7e0c1d9a24
Revises: 5b1f0c7d2a93
Create Date: 2026-11-28 04:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b7e0c1d9a24'
down_revision: str | None = '5b1f0c7d2a93'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_window_counts',
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('action', 'window_start', name=op.f('pk_audit_window_counts'))
    )


def downgrade() -> None:
    # Counts not yet written to the chain are lost with the table.
    op.drop_table('audit_window_counts')
