"""Triage: assignment, deadlines, transition history, grants, and the audit chain.

The audit log is append-only in the database itself: a trigger refuses UPDATE, DELETE and
TRUNCATE for every role, the service's included, and the head row only ever advances by
one entry. (A superuser can still disable the triggers; the hash chain is what makes that
visible.)

Revision ID: e2e9a0db4543
Revises: be4b35b0294d
Create Date: 2026-11-22 00:20:31.353528+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'e2e9a0db4543'
down_revision: str | None = 'be4b35b0294d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_CHANGES_FUNCTION = """
CREATE FUNCTION audit_log_refuse_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

# The head moves one entry at a time, forwards: rewinding it would hide the entries after
# it from verification and make the next append collide with them.
HEAD_ONLY_ADVANCES_FUNCTION = """
CREATE FUNCTION audit_head_only_advances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1 THEN
        RAISE EXCEPTION 'audit_head only advances by one entry: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('actor_role', sa.String(length=32), nullable=True),
    sa.Column('case_id', sa.Uuid(), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_action', 'audit_log', ['action', 'seq'], unique=False)
    op.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(genesis=bytes(32)))
    op.execute(REFUSE_CHANGES_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_changes()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_changes()"
    )
    op.execute(HEAD_ONLY_ADVANCES_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_head_only_advances BEFORE UPDATE OR DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_only_advances()"
    )
    op.execute(
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_changes()"
    )
    op.create_index('ix_audit_log_case_id', 'audit_log', ['case_id', 'seq'], unique=False)
    op.create_table('case_transitions',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('resolution', sa.String(length=32), nullable=True),
    sa.Column('assignee_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("action IN ('acknowledge', 'start_assessment', 'accept', 'dismiss', 'refer', 'conclude', 'close_referral', 'reopen')", name=op.f('ck_case_transitions_action')),
    sa.CheckConstraint("from_state IN ('received', 'acknowledged', 'assessing', 'investigating', 'referred', 'closed')", name=op.f('ck_case_transitions_from_state')),
    sa.CheckConstraint("to_state IN ('received', 'acknowledged', 'assessing', 'investigating', 'referred', 'closed')", name=op.f('ck_case_transitions_to_state')),
    sa.ForeignKeyConstraint(['actor_id'], ['staff_users.id'], name=op.f('fk_case_transitions_actor_id_staff_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['assignee_id'], ['staff_users.id'], name=op.f('fk_case_transitions_assignee_id_staff_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_transitions_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_transitions')),
    sa.UniqueConstraint('case_id', 'version', name='uq_case_transitions_case_id_version')
    )
    op.add_column('case_keys', sa.Column('granted_by_id', sa.Uuid(), nullable=True))
    op.add_column('case_keys', sa.Column('granted_at', sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(op.f('fk_case_keys_granted_by_id_staff_users'), 'case_keys', 'staff_users', ['granted_by_id'], ['id'], ondelete='RESTRICT')
    op.add_column('cases', sa.Column('acknowledged_on', sa.Date(), nullable=True))
    op.add_column('cases', sa.Column('feedback_given_on', sa.Date(), nullable=True))
    op.add_column('cases', sa.Column('next_due_on', sa.Date(), nullable=True))
    op.add_column('cases', sa.Column('assignee_id', sa.Uuid(), nullable=True))
    op.add_column('cases', sa.Column('resolution', sa.String(length=32), nullable=True))
    # Art. 9(1)(f): three months from the end of the acknowledgement period when none was sent.
    op.execute("UPDATE cases SET feedback_due_on = acknowledge_due_on + interval '3 months' WHERE feedback_due_on IS NULL")
    op.alter_column('cases', 'feedback_due_on',
               existing_type=sa.DATE(),
               nullable=False)
    op.create_check_constraint(
        op.f('ck_cases_resolution'),
        'cases',
        "resolution IN ('not_admissible', 'duplicate', 'substantiated', 'unsubstantiated')",
    )
    op.create_check_constraint(op.f('ck_cases_resolution_when_closed'), 'cases', "resolution IS NULL OR state = 'closed'")
    op.drop_index(op.f('ix_cases_received_on'), table_name='cases')
    op.create_index('ix_cases_assignee_queue', 'cases', ['assignee_id', 'received_on', 'id'], unique=False)
    op.create_index('ix_cases_category_queue', 'cases', ['category', 'received_on', 'id'], unique=False)
    op.create_index('ix_cases_drill_queue', 'cases', ['received_on', 'id'], unique=False, postgresql_where=sa.text('is_drill'))
    # No case is acknowledged yet: the next deadline of an open one is its acknowledgement.
    op.execute("UPDATE cases SET next_due_on = acknowledge_due_on WHERE state <> 'closed'")
    op.create_index('ix_cases_next_due', 'cases', ['next_due_on'], unique=False, postgresql_where=sa.text('next_due_on IS NOT NULL'))
    op.create_index('ix_cases_waiting_queue', 'cases', ['received_on', 'id'], unique=False, postgresql_where=sa.text('next_due_on IS NOT NULL'))
    op.create_index('ix_cases_queue', 'cases', ['received_on', 'id'], unique=False)
    op.create_index('ix_cases_state_queue', 'cases', ['state', 'received_on', 'id'], unique=False)
    op.create_foreign_key(op.f('fk_cases_assignee_id_staff_users'), 'cases', 'staff_users', ['assignee_id'], ['id'], ondelete='RESTRICT')


def downgrade() -> None:
    op.drop_constraint(op.f('ck_cases_resolution_when_closed'), 'cases', type_='check')
    op.drop_constraint(op.f('ck_cases_resolution'), 'cases', type_='check')
    op.drop_constraint(op.f('fk_cases_assignee_id_staff_users'), 'cases', type_='foreignkey')
    op.drop_index('ix_cases_state_queue', table_name='cases')
    op.drop_index('ix_cases_queue', table_name='cases')
    op.drop_index('ix_cases_waiting_queue', table_name='cases', postgresql_where=sa.text('next_due_on IS NOT NULL'))
    op.drop_index('ix_cases_next_due', table_name='cases', postgresql_where=sa.text('next_due_on IS NOT NULL'))
    op.drop_index('ix_cases_drill_queue', table_name='cases', postgresql_where=sa.text('is_drill'))
    op.drop_index('ix_cases_category_queue', table_name='cases')
    op.drop_index('ix_cases_assignee_queue', table_name='cases')
    op.create_index(op.f('ix_cases_received_on'), 'cases', ['received_on'], unique=False)
    op.alter_column('cases', 'feedback_due_on',
               existing_type=sa.DATE(),
               nullable=True)
    op.drop_column('cases', 'resolution')
    op.drop_column('cases', 'assignee_id')
    op.drop_column('cases', 'next_due_on')
    op.drop_column('cases', 'feedback_given_on')
    op.drop_column('cases', 'acknowledged_on')
    op.drop_constraint(op.f('fk_case_keys_granted_by_id_staff_users'), 'case_keys', type_='foreignkey')
    op.drop_column('case_keys', 'granted_at')
    op.drop_column('case_keys', 'granted_by_id')
    op.drop_table('case_transitions')
    op.execute("DROP TRIGGER audit_head_no_truncate ON audit_head")
    op.execute("DROP TRIGGER audit_head_only_advances ON audit_head")
    op.execute("DROP FUNCTION audit_head_only_advances()")
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_refuse_changes()")
    op.drop_index('ix_audit_log_case_id', table_name='audit_log')
    op.drop_index('ix_audit_log_action', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('audit_head')
