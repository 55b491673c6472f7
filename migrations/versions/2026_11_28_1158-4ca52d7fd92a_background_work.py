"""Background work: the job queue's schema, the notification outbox and its deliveries,
job run counts, deadline notices, staff e-mail addresses, and retention's columns on cases.

The job queue is procrastinate's: its schema is created here from the schema file of the
installed library (pinned to 3.10 in pyproject.toml), so that `cleanwindow db upgrade`
and `serve` create it like every other table and no operator runs a side command. A
procrastinate release that changes the schema comes with a new revision applying that
release's own migration files (procrastinate/sql/migrations/).

Revision ID: 4ca52d7fd92a
Revises: 498834cb3284
Create Date: 2026-11-28 11:58:14.953114+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

# The schema file this revision was written against; another one is refused rather than
# half-applied.
PROCRASTINATE_SCHEMA_SERIES = "3.10."

revision: str = '4ca52d7fd92a'
down_revision: str | None = '498834cb3284'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_script(sql: str) -> None:
    """Run a script of many statements (functions with `;` inside) in the migration's
    transaction: asyncpg's simple-query path takes them all at once, where a prepared
    statement takes one."""
    driver_connection = op.get_bind().connection.driver_connection
    await_only(driver_connection.execute(sql))


def _create_job_queue() -> None:
    import procrastinate
    from procrastinate.schema import SchemaManager

    if not procrastinate.__version__.startswith(PROCRASTINATE_SCHEMA_SERIES):
        raise RuntimeError(
            f"this revision creates procrastinate {PROCRASTINATE_SCHEMA_SERIES}x's schema, "
            f"but {procrastinate.__version__} is installed"
        )
    _run_script(SchemaManager.get_schema())


DROP_JOB_QUEUE = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT tablename FROM pg_tables
                WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.tablename);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', item.signature);
    END LOOP;
    FOR item IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
                  AND t.typtype IN ('e', 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', item.typname);
    END LOOP;
END $$;
"""


def _organisation_zone() -> str:
    """CLEANWINDOW_TIMEZONE as the service reads it (the settings' default otherwise)."""
    import os

    from app.domain.clock import DEFAULT_TIMEZONE, organisation_zone

    name = os.environ.get("CLEANWINDOW_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    organisation_zone(name)  # refuses a name that is not an IANA zone
    return name


def upgrade() -> None:
    _create_job_queue()
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('runs', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failures', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )
    op.create_table('notification_deliveries',
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.String(length=8), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("channel IN ('email', 'webhook')", name=op.f('ck_notification_deliveries_channel')),
    sa.CheckConstraint("state IN ('pending', 'sent', 'dead')", name=op.f('ck_notification_deliveries_state')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_notification_deliveries_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries'))
    )
    op.create_index('ix_notification_deliveries_due', 'notification_deliveries', ['next_attempt_at'], unique=False, postgresql_where=sa.text("state = 'pending'"))
    op.create_index('ix_notification_deliveries_state', 'notification_deliveries', ['state'], unique=False)
    op.create_table('deadline_notices',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('deadline', sa.String(length=16), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('notice', sa.String(length=8), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.CheckConstraint("deadline IN ('acknowledge', 'feedback')", name=op.f('ck_deadline_notices_deadline')),
    sa.CheckConstraint("notice IN ('reminder', 'missed')", name=op.f('ck_deadline_notices_notice')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_deadline_notices_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', 'deadline', 'due_on', 'notice', name=op.f('pk_deadline_notices'))
    )
    op.create_table('notification_events',
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=True),
    sa.Column('recipient_id', sa.Uuid(), nullable=True),
    sa.Column('audience', postgresql.ARRAY(sa.String(length=16)), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("audience <@ ARRAY['triage', 'supervisor', 'admin', 'auditor']::varchar[]", name=op.f('ck_notification_events_audience')),
    sa.CheckConstraint("kind IN ('case.received', 'case.reporter_message', 'case.deadline_approaching', 'case.deadline_missed', 'audit.verification_failed')", name=op.f('ck_notification_events_kind')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_notification_events_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recipient_id'], ['staff_users.id'], name=op.f('fk_notification_events_recipient_id_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_events'))
    )
    op.create_index(op.f('ix_notification_events_case_id'), 'notification_events', ['case_id'], unique=False)
    op.create_index('ix_notification_events_not_before', 'notification_events', ['not_before'], unique=False)
    op.add_column('cases', sa.Column('closed_on', sa.Date(), nullable=True))
    op.add_column('cases', sa.Column('purged_on', sa.Date(), nullable=True))
    op.alter_column('cases', 'receipt_tag',
               existing_type=postgresql.BYTEA(),
               nullable=True)
    op.alter_column('cases', 'reporter_public_key',
               existing_type=postgresql.BYTEA(),
               nullable=True)
    op.alter_column('cases', 'sealed_report',
               existing_type=postgresql.BYTEA(),
               nullable=True)
    op.create_index('ix_cases_retention', 'cases', ['closed_on'], unique=False, postgresql_where=sa.text('closed_on IS NOT NULL AND purged_on IS NULL'))
    op.add_column('staff_users', sa.Column('email', sa.String(length=320), nullable=True))
    # A closed case's closing date, from its last step into `closed`, as the organisation's
    # calendar dates it (the service sets it the same way from now on). A closed case with
    # no such step (none should exist) starts its clock today rather than at its receipt.
    op.execute(
        sa.text(
            "UPDATE cases SET closed_on = (SELECT (max(t.occurred_at) AT TIME ZONE :zone)::date "
            "FROM case_transitions t WHERE t.case_id = cases.id AND t.to_state = 'closed') "
            "WHERE state = 'closed'"
        ).bindparams(zone=_organisation_zone())
    )
    op.execute("UPDATE cases SET closed_on = CURRENT_DATE WHERE state = 'closed' AND closed_on IS NULL")
    op.create_check_constraint(
        'purged_has_no_report', 'cases', '(purged_on IS NULL) = (sealed_report IS NOT NULL)'
    )
    op.create_check_constraint(
        'purged_is_closed_and_unreachable',
        'cases',
        "purged_on IS NULL OR (receipt_tag IS NULL AND reporter_public_key IS NULL AND state = 'closed')",
    )
    op.create_check_constraint('closed_on_when_closed', 'cases', "(closed_on IS NOT NULL) = (state = 'closed')")
    # The drills.purge job closes a campaign left open long after its end: a close with no
    # actor, like the scheduled start.
    op.drop_constraint(op.f('ck_drill_campaign_transitions_actor'), 'drill_campaign_transitions', type_='check')
    op.create_check_constraint(
        'actor', 'drill_campaign_transitions', "action = 'close' OR (action = 'start') = (actor_id IS NULL)"
    )


def downgrade() -> None:
    purged = op.get_bind().scalar(sa.text("SELECT count(*) FROM cases WHERE purged_on IS NOT NULL"))
    if purged:
        raise RuntimeError(
            f"{purged} cases were purged by retention; the earlier schema cannot hold a case "
            "without its content. Restore from a backup taken before this revision instead."
        )
    automatic_closes = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM drill_campaign_transitions WHERE action = 'close' AND actor_id IS NULL")
    )
    if automatic_closes:
        raise RuntimeError(
            f"{automatic_closes} drill campaigns were closed by the drills.purge job, which the "
            "earlier schema cannot record; restore from a backup taken before this revision instead."
        )
    op.drop_constraint(op.f('ck_drill_campaign_transitions_actor'), 'drill_campaign_transitions', type_='check')
    op.create_check_constraint('actor', 'drill_campaign_transitions', "(action = 'start') = (actor_id IS NULL)")
    for name in ('closed_on_when_closed', 'purged_is_closed_and_unreachable', 'purged_has_no_report'):
        op.drop_constraint(op.f(f'ck_cases_{name}'), 'cases', type_='check')
    op.drop_column('staff_users', 'email')
    op.drop_index('ix_cases_retention', table_name='cases', postgresql_where=sa.text('closed_on IS NOT NULL AND purged_on IS NULL'))
    op.alter_column('cases', 'sealed_report',
               existing_type=postgresql.BYTEA(),
               nullable=False)
    op.alter_column('cases', 'reporter_public_key',
               existing_type=postgresql.BYTEA(),
               nullable=False)
    op.alter_column('cases', 'receipt_tag',
               existing_type=postgresql.BYTEA(),
               nullable=False)
    op.drop_column('cases', 'purged_on')
    op.drop_column('cases', 'closed_on')
    op.drop_index('ix_notification_events_not_before', table_name='notification_events')
    op.drop_index(op.f('ix_notification_events_case_id'), table_name='notification_events')
    op.drop_table('notification_events')
    op.drop_table('deadline_notices')
    op.drop_index('ix_notification_deliveries_state', table_name='notification_deliveries')
    op.drop_index('ix_notification_deliveries_due', table_name='notification_deliveries', postgresql_where=sa.text("state = 'pending'"))
    op.drop_table('notification_deliveries')
    op.drop_table('job_runs')
    _run_script(DROP_JOB_QUEUE)
