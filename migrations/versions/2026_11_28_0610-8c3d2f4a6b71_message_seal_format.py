"""Each message records the format it was sealed in, so readers open a message only in
that format: a format-1 seal (no author bound in) can then never pass for a new message.

Revision ID: 8c3d2f4a6b71
Revises: 5b7e0c1d9a24
Create Date: 2026-11-28 06:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '8c3d2f4a6b71'
down_revision: str | None = '5b7e0c1d9a24'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every message stored so far was sealed in format 1 or 2, and nothing tells which
    # without the key: those written since format 2 existed are marked by the service
    # itself from now on, and the older ones stay 1 (opened as before, author unverified).
    op.add_column(
        'case_messages',
        sa.Column('seal_format', sa.SmallInteger(), server_default=sa.text('1'), nullable=False),
    )
    op.create_check_constraint(
        op.f('ck_case_messages_seal_format'), 'case_messages', 'seal_format IN (1, 2)'
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_case_messages_seal_format'), 'case_messages', type_='check')
    op.drop_column('case_messages', 'seal_format')
