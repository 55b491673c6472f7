"""Drill campaigns: campaigns and their history, participant codes, drill cases' facts,
simulated effects; and on `cases`, the campaign of a drill case and what staff are shown.

The campaign table's CHECK lists the (action, from, to) steps of `app.domain.drills`
(a test compares the two). A trigger makes a case's drill columns unchangeable after
intake, whoever writes the SQL; another refuses a drill case for a closed campaign.
No drill case could exist before this revision (every drill token was refused), so the
new constraints hold on any existing database.

Revision ID: 3f1d2c4b5a60
Revises: 8c3d2f4a6b71
Create Date: 2026-11-28 06:28:42.209976+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3f1d2c4b5a60'
down_revision: str | None = '8c3d2f4a6b71'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


DRILL_COLUMNS_IMMUTABLE = """
CREATE FUNCTION cases_drill_columns_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_drill IS DISTINCT FROM OLD.is_drill
        OR NEW.drill_campaign_id IS DISTINCT FROM OLD.drill_campaign_id
        OR NEW.shown_as_drill IS DISTINCT FROM OLD.shown_as_drill THEN
        RAISE EXCEPTION 'a case''s drill flag and campaign are set at intake and never change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
"""

NO_DRILL_CASE_FOR_CLOSED_CAMPAIGN = """
CREATE FUNCTION cases_no_drill_case_for_closed_campaign() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM drill_campaigns WHERE id = NEW.drill_campaign_id AND state = 'closed') THEN
        RAISE EXCEPTION 'a closed drill campaign takes no new cases'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table('drill_campaigns',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blind', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('token_digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('scenarios', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_by_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('codes_issued', sa.Integer(), nullable=False),
    sa.Column('injections', sa.Integer(), nullable=False),
    sa.Column('scorecard', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('purged_cases', sa.Integer(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(state = 'closed') = (closed_at IS NOT NULL)", name=op.f('ck_drill_campaigns_closed_at_when_closed')),
    sa.CheckConstraint("scorecard IS NULL OR state = 'closed'", name=op.f('ck_drill_campaigns_frozen_when_closed')),
    sa.CheckConstraint("state IN ('scheduled', 'running', 'paused', 'closed')", name=op.f('ck_drill_campaigns_state')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_drill_campaigns_window')),
    sa.CheckConstraint('version >= 1 AND codes_issued >= 0 AND injections >= 0', name=op.f('ck_drill_campaigns_counters')),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_users.id'], name=op.f('fk_drill_campaigns_created_by_id_staff_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drill_campaigns')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_drill_campaigns_token_digest'))
    )
    op.create_index('ix_drill_campaigns_created_by', 'drill_campaigns', ['created_by_id', 'created_at'], unique=False)
    op.create_table('drill_campaign_transitions',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(action = 'start') = (actor_id IS NULL)", name=op.f('ck_drill_campaign_transitions_actor')),
    sa.CheckConstraint("(action, from_state, to_state) IN (('close', 'paused', 'closed'), ('close', 'running', 'closed'), ('close', 'scheduled', 'closed'), ('pause', 'running', 'paused'), ('pause', 'scheduled', 'paused'), ('resume', 'paused', 'running'), ('start', 'scheduled', 'running'))", name=op.f('ck_drill_campaign_transitions_allowed_step')),
    sa.CheckConstraint("action IN ('start', 'pause', 'resume', 'close')", name=op.f('ck_drill_campaign_transitions_action')),
    sa.ForeignKeyConstraint(['actor_id'], ['staff_users.id'], name=op.f('fk_drill_campaign_transitions_actor_id_staff_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['campaign_id'], ['drill_campaigns.id'], name=op.f('fk_drill_campaign_transitions_campaign_id_drill_campaigns'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drill_campaign_transitions')),
    sa.UniqueConstraint('campaign_id', 'version', name='uq_drill_campaign_transitions_campaign_id_version')
    )
    op.create_table('drill_participant_codes',
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('cohort', sa.String(length=64), nullable=True),
    sa.Column('scenario', sa.SmallInteger(), nullable=False),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.CheckConstraint("decision IN ('reported', 'no_report')", name=op.f('ck_drill_participant_codes_decision')),
    sa.CheckConstraint('decision IS NULL OR used', name=op.f('ck_drill_participant_codes_decided_when_used')),
    sa.CheckConstraint('scenario >= 1', name=op.f('ck_drill_participant_codes_scenario')),
    sa.ForeignKeyConstraint(['campaign_id'], ['drill_campaigns.id'], name=op.f('fk_drill_participant_codes_campaign_id_drill_campaigns'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_drill_participant_codes'))
    )
    op.create_index('ix_drill_participant_codes_campaign_id', 'drill_participant_codes', ['campaign_id'], unique=False)
    op.create_table('drill_cases',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('scenario', sa.SmallInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('injection', 'participant')", name=op.f('ck_drill_cases_source')),
    sa.CheckConstraint('scenario >= 1', name=op.f('ck_drill_cases_scenario')),
    sa.ForeignKeyConstraint(['campaign_id'], ['drill_campaigns.id'], name=op.f('fk_drill_cases_campaign_id_drill_campaigns'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_drill_cases_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_drill_cases'))
    )
    op.create_index('ix_drill_cases_campaign_id', 'drill_cases', ['campaign_id'], unique=False)
    op.create_table('drill_effects',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['drill_campaigns.id'], name=op.f('fk_drill_effects_campaign_id_drill_campaigns'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_drill_effects_case_id_cases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drill_effects'))
    )
    op.create_index('ix_drill_effects_campaign_id', 'drill_effects', ['campaign_id'], unique=False)
    op.add_column('cases', sa.Column('drill_campaign_id', sa.Uuid(), nullable=True))
    op.add_column('cases', sa.Column('shown_as_drill', sa.Boolean(), server_default='false', nullable=False))
    op.create_index('ix_cases_drill_campaign_id', 'cases', ['drill_campaign_id'], unique=False, postgresql_where=sa.text('is_drill'))
    op.create_foreign_key(op.f('fk_cases_drill_campaign_id_drill_campaigns'), 'cases', 'drill_campaigns', ['drill_campaign_id'], ['id'], ondelete='RESTRICT')
    op.create_check_constraint(
        op.f('ck_cases_drill_has_campaign'), 'cases', 'is_drill = (drill_campaign_id IS NOT NULL)'
    )
    op.create_check_constraint(
        op.f('ck_cases_shown_as_drill_is_drill'), 'cases', 'is_drill OR NOT shown_as_drill'
    )
    # The queue's `drill` filter now reads what staff are shown (a blind drill is not).
    op.drop_index('ix_cases_drill_queue', table_name='cases', postgresql_where=sa.text('is_drill'))
    op.create_index(
        'ix_cases_drill_queue', 'cases', ['received_on', 'id'], postgresql_where=sa.text('shown_as_drill')
    )
    op.execute(DRILL_COLUMNS_IMMUTABLE)
    op.execute(
        "CREATE TRIGGER cases_drill_columns_immutable"
        " BEFORE UPDATE OF is_drill, drill_campaign_id, shown_as_drill ON cases"
        " FOR EACH ROW EXECUTE FUNCTION cases_drill_columns_immutable()"
    )
    op.execute(NO_DRILL_CASE_FOR_CLOSED_CAMPAIGN)
    op.execute(
        "CREATE TRIGGER cases_no_drill_case_for_closed_campaign"
        " BEFORE INSERT ON cases FOR EACH ROW WHEN (NEW.is_drill)"
        " EXECUTE FUNCTION cases_no_drill_case_for_closed_campaign()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER cases_no_drill_case_for_closed_campaign ON cases")
    op.execute("DROP FUNCTION cases_no_drill_case_for_closed_campaign()")
    op.execute("DROP TRIGGER cases_drill_columns_immutable ON cases")
    op.execute("DROP FUNCTION cases_drill_columns_immutable()")
    op.drop_index('ix_cases_drill_queue', table_name='cases', postgresql_where=sa.text('shown_as_drill'))
    op.create_index('ix_cases_drill_queue', 'cases', ['received_on', 'id'], postgresql_where=sa.text('is_drill'))
    op.drop_constraint(op.f('ck_cases_shown_as_drill_is_drill'), 'cases', type_='check')
    op.drop_constraint(op.f('ck_cases_drill_has_campaign'), 'cases', type_='check')
    op.drop_constraint(op.f('fk_cases_drill_campaign_id_drill_campaigns'), 'cases', type_='foreignkey')
    op.drop_index('ix_cases_drill_campaign_id', table_name='cases', postgresql_where=sa.text('is_drill'))
    op.drop_column('cases', 'shown_as_drill')
    op.drop_column('cases', 'drill_campaign_id')
    op.drop_index('ix_drill_effects_campaign_id', table_name='drill_effects')
    op.drop_table('drill_effects')
    op.drop_index('ix_drill_cases_campaign_id', table_name='drill_cases')
    op.drop_table('drill_cases')
    op.drop_index('ix_drill_participant_codes_campaign_id', table_name='drill_participant_codes')
    op.drop_table('drill_participant_codes')
    op.drop_table('drill_campaign_transitions')
    op.drop_index('ix_drill_campaigns_created_by', table_name='drill_campaigns')
    op.drop_table('drill_campaigns')
