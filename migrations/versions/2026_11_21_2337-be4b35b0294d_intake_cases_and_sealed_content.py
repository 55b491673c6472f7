"""Cases with sealed content, their keys, messages and attachments; intake budgets; the
installation's receipt salt; staff public keys.

Revision ID: be4b35b0294d
Revises: cf6f74ff2587
Create Date: 2026-11-21 23:37:10.934270+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'be4b35b0294d'
down_revision: str | None = 'cf6f74ff2587'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('org_unit', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('is_drill', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('acknowledge_due_on', sa.Date(), nullable=False),
    sa.Column('feedback_due_on', sa.Date(), nullable=True),
    sa.Column('receipt_scheme', sa.SmallInteger(), nullable=False),
    sa.Column('receipt_tag', sa.LargeBinary(length=32), nullable=False),
    sa.Column('reporter_public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_report', sa.LargeBinary(), nullable=False),
    sa.Column('pow_digest', sa.LargeBinary(length=32), nullable=True),
    sa.Column('idempotency_digest', sa.LargeBinary(length=32), nullable=True),
    sa.Column('sealed_replay', sa.LargeBinary(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("channel IN ('citizen', 'employee')", name=op.f('ck_cases_channel')),
    sa.CheckConstraint("language IN ('ko', 'en')", name=op.f('ck_cases_language')),
    sa.CheckConstraint("state IN ('received', 'acknowledged', 'assessing', 'investigating', 'referred', 'closed')", name=op.f('ck_cases_state')),
    sa.CheckConstraint('(idempotency_digest IS NULL) = (sealed_replay IS NULL)', name=op.f('ck_cases_replay_pairs')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_cases_version_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('idempotency_digest', name=op.f('uq_cases_idempotency_digest')),
    sa.UniqueConstraint('pow_digest', name=op.f('uq_cases_pow_digest')),
    sa.UniqueConstraint('receipt_tag', name=op.f('uq_cases_receipt_tag'))
    )
    op.create_index('ix_cases_received_on', 'cases', ['received_on'], unique=False)
    op.create_table('installation',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('receipt_salt', sa.LargeBinary(length=16), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_installation_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installation'))
    )
    op.create_table('intake_budgets',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'window_start', name=op.f('pk_intake_budgets'))
    )
    op.create_table('case_attachments',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('author', sa.String(length=16), nullable=False),
    sa.Column('staff_user_id', sa.Uuid(), nullable=True),
    sa.Column('uploaded_on', sa.Date(), nullable=False),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunk_bytes', sa.Integer(), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('sealed_meta', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(author = 'staff') = (staff_user_id IS NOT NULL)", name=op.f('ck_case_attachments_staff_has_user')),
    sa.CheckConstraint("author IN ('reporter', 'staff')", name=op.f('ck_case_attachments_author')),
    sa.CheckConstraint('chunk_count >= 1 AND stored_bytes >= 0', name=op.f('ck_case_attachments_sizes')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_attachments_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_case_attachments_staff_user_id_staff_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_attachments'))
    )
    op.create_index('ix_case_attachments_case_id', 'case_attachments', ['case_id'], unique=False)
    op.create_table('case_keys',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('recipient_kind', sa.String(length=16), nullable=False),
    sa.Column('staff_user_id', sa.Uuid(), nullable=True),
    sa.Column('recipient_fingerprint', sa.String(length=39), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(recipient_kind = 'staff') = (staff_user_id IS NOT NULL)", name=op.f('ck_case_keys_staff_has_user')),
    sa.CheckConstraint("recipient_kind IN ('staff', 'recovery', 'reporter')", name=op.f('ck_case_keys_recipient_kind')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_keys_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_case_keys_staff_user_id_staff_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_keys')),
    sa.UniqueConstraint('case_id', 'recipient_fingerprint', name='uq_case_keys_case_id_recipient')
    )
    op.create_index('ix_case_keys_staff_user_id', 'case_keys', ['staff_user_id'], unique=False)
    op.create_table('case_messages',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=16), nullable=False),
    sa.Column('staff_user_id', sa.Uuid(), nullable=True),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sealed_body', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(author = 'staff') = (staff_user_id IS NOT NULL)", name=op.f('ck_case_messages_staff_has_user')),
    sa.CheckConstraint("author = 'staff' OR sent_at IS NULL", name=op.f('ck_case_messages_reporter_time_coarse')),
    sa.CheckConstraint("author IN ('reporter', 'staff')", name=op.f('ck_case_messages_author')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_messages_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_case_messages_staff_user_id_staff_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_messages')),
    sa.UniqueConstraint('case_id', 'seq', name='uq_case_messages_case_id_seq')
    )
    op.create_table('attachment_chunks',
    sa.Column('attachment_id', sa.Uuid(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['case_attachments.id'], name=op.f('fk_attachment_chunks_attachment_id_case_attachments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attachment_id', 'index', name=op.f('pk_attachment_chunks'))
    )
    op.add_column('staff_users', sa.Column('public_key', sa.LargeBinary(), nullable=True))
    op.add_column('staff_users', sa.Column('public_key_fingerprint', sa.String(length=39), nullable=True))
    op.add_column('staff_users', sa.Column('public_key_registered_at', sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint(op.f('uq_staff_users_public_key_fingerprint'), 'staff_users', ['public_key_fingerprint'])
    # 128 random bits from PostgreSQL itself, so every installation gets its own salt.
    op.execute(
        "INSERT INTO installation (id, receipt_salt) VALUES "
        "(1, substring(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())) for 16))"
    )


def downgrade() -> None:
    op.drop_constraint(op.f('uq_staff_users_public_key_fingerprint'), 'staff_users', type_='unique')
    op.drop_column('staff_users', 'public_key_registered_at')
    op.drop_column('staff_users', 'public_key_fingerprint')
    op.drop_column('staff_users', 'public_key')
    op.drop_table('attachment_chunks')
    op.drop_table('case_messages')
    op.drop_index('ix_case_keys_staff_user_id', table_name='case_keys')
    op.drop_table('case_keys')
    op.drop_index('ix_case_attachments_case_id', table_name='case_attachments')
    op.drop_table('case_attachments')
    op.drop_table('intake_budgets')
    op.drop_table('installation')
    op.drop_index('ix_cases_received_on', table_name='cases')
    op.drop_table('cases')
