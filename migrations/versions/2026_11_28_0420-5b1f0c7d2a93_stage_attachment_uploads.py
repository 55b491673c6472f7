"""Attachments are staged while they stream in and published whole.

An upload's row is tied to its case only through `staging_case_id` (with the date it was
staged) until the file is complete and the per-report limits have been checked under the
case's lock; then `case_id` is set and the staging columns cleared. Every existing
attachment is published already: it keeps its `case_id`.

Revision ID: 5b1f0c7d2a93
Revises: e2e9a0db4543
Create Date: 2026-11-28 04:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b1f0c7d2a93'
down_revision: str | None = 'e2e9a0db4543'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('case_attachments', sa.Column('staging_case_id', sa.Uuid(), nullable=True))
    op.add_column('case_attachments', sa.Column('staged_on', sa.Date(), nullable=True))
    op.alter_column('case_attachments', 'case_id', existing_type=sa.Uuid(), nullable=True)
    op.create_foreign_key(
        op.f('fk_case_attachments_staging_case_id_cases'), 'case_attachments', 'cases',
        ['staging_case_id'], ['id'], ondelete='CASCADE',
    )
    op.create_check_constraint(
        op.f('ck_case_attachments_published_or_staged'), 'case_attachments',
        'num_nonnulls(case_id, staging_case_id) = 1',
    )
    op.create_check_constraint(
        op.f('ck_case_attachments_staged_on_when_staged'), 'case_attachments',
        '(staging_case_id IS NULL) = (staged_on IS NULL)',
    )
    op.create_index(
        'ix_case_attachments_staging_case_id', 'case_attachments', ['staging_case_id'], unique=False,
        postgresql_where=sa.text('staging_case_id IS NOT NULL'),
    )
    op.create_index(
        'ix_case_attachments_staged_on', 'case_attachments', ['staged_on'], unique=False,
        postgresql_where=sa.text('staged_on IS NOT NULL'),
    )


def downgrade() -> None:
    # Staged uploads were never published: nobody saw them, nothing accepted is lost.
    op.execute('DELETE FROM case_attachments WHERE case_id IS NULL')
    op.drop_index('ix_case_attachments_staged_on', table_name='case_attachments',
                  postgresql_where=sa.text('staged_on IS NOT NULL'))
    op.drop_index('ix_case_attachments_staging_case_id', table_name='case_attachments',
                  postgresql_where=sa.text('staging_case_id IS NOT NULL'))
    op.drop_constraint(op.f('ck_case_attachments_staged_on_when_staged'), 'case_attachments', type_='check')
    op.drop_constraint(op.f('ck_case_attachments_published_or_staged'), 'case_attachments', type_='check')
    op.drop_constraint(op.f('fk_case_attachments_staging_case_id_cases'), 'case_attachments', type_='foreignkey')
    op.alter_column('case_attachments', 'case_id', existing_type=sa.Uuid(), nullable=False)
    op.drop_column('case_attachments', 'staged_on')
    op.drop_column('case_attachments', 'staging_case_id')
