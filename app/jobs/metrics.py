"""What `/metrics` reads from the database at each scrape: the outbox's backlog and dead
letters, the background jobs' runs, the last audit verification, and cases by state.

Read at scrape time, not counted in a process, so that every replica shows the same
figures whichever worker did the work. A handful of aggregate queries in one short
transaction, each answered from an index (docs/jobs.md, "Metrics", says which).

Two rules keep these figures from telling more than staff's own screens do:
- drill cases are never counted: a count that moves when a blind drill's report arrives
  would unmask the drill to whoever reads metrics;
- cases count from the day after they were received: a count polled every few seconds
  would date each new report to the scrape, where the database dates it to the day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.housekeeping import VERIFY_JOB
from app.cases.models import Case
from app.context import AppContext
from app.domain.clock import organisation_date
from app.domain.notifications import DeliveryState
from app.domain.triage import CaseState
from app.jobs.catalogue import JOBS
from app.jobs.models import JobRun
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.platform.metrics import ScrapeCollector


async def collect_database_metrics(context: AppContext) -> Iterable[Metric]:
    now = context.clock()
    today = organisation_date(now, context.settings.zone)
    async with context.own_transaction() as session:
        families = await _outbox(session, now)
        families += await _jobs(session)
        families += await _cases(session, today)
    return families


DATABASE_METRICS = ScrapeCollector("database", collect_database_metrics)


async def _outbox(session: AsyncSession, now: datetime) -> list[Metric]:
    # Events still held for their batch are not counted: their number would date each
    # new report and reporter message to the scrape, which is what batching hides.
    due_events = select(func.count()).select_from(NotificationEvent).where(NotificationEvent.not_before <= now)
    deliveries = select(func.count()).select_from(NotificationDelivery)
    pending = deliveries.where(NotificationDelivery.state == DeliveryState.PENDING.value)
    dead = deliveries.where(NotificationDelivery.state == DeliveryState.DEAD.value)
    events, waiting, dead_letters = (
        await session.execute(select(due_events.scalar_subquery(), pending.scalar_subquery(), dead.scalar_subquery()))
    ).one()
    backlog = GaugeMetricFamily(
        "cleanwindow_outbox_backlog",
        "Notifications not yet sent: due outbox events not yet turned into deliveries (stage=event), "
        "and deliveries waiting for their first try or a retry (stage=delivery).",
        labels=["stage"],
    )
    backlog.add_metric(["event"], events)
    backlog.add_metric(["delivery"], waiting)
    return [
        backlog,
        GaugeMetricFamily(
            "cleanwindow_outbox_dead_letters",
            "Deliveries that exhausted their retries and wait for an administrator.",
            value=dead_letters,
        ),
    ]


async def _jobs(session: AsyncSession) -> list[Metric]:
    rows = {row.name: row for row in (await session.execute(select(JobRun))).scalars()}
    runs = CounterMetricFamily("cleanwindow_job_runs", "Runs of each periodic job, by any worker.", labels=["job"])
    failures = CounterMetricFamily(
        "cleanwindow_job_failures", "Runs of each periodic job that ended in an error.", labels=["job"]
    )
    succeeded = GaugeMetricFamily(
        "cleanwindow_job_last_success_timestamp_seconds",
        "When each periodic job last finished without error (Unix time); absent if it never did.",
        labels=["job"],
    )
    families: list[Metric] = [runs, failures, succeeded]
    for job in JOBS:
        row = rows.get(job.name)
        runs.add_metric([job.name], row.runs if row else 0)
        failures.add_metric([job.name], row.failures if row else 0)
        if row is not None and row.last_succeeded_at is not None:
            succeeded.add_metric([job.name], row.last_succeeded_at.timestamp())
    verification = rows.get(VERIFY_JOB)
    if verification is not None and verification.last_result is not None:
        # A check that failed to run since its last verdict proves nothing: 0, not the
        # old verdict.
        failed_since = (
            verification.last_finished_at is not None
            and verification.last_succeeded_at is not None
            and verification.last_finished_at > verification.last_succeeded_at
        )
        families.append(
            GaugeMetricFamily(
                "cleanwindow_audit_chain_ok",
                "1 if the last audit.verify run found the audit chain intact; 0 if it found it broken "
                "or failed to run since; absent if it never ran.",
                value=1 if verification.last_result.get("ok") and not failed_since else 0,
            )
        )
    return families


async def _cases(session: AsyncSession, today: date) -> list[Metric]:
    """Real cases by state, and real overdue cases. Filtering on `is_drill` directly
    would fetch every case row from the table (the flag is in no index but the drills'
    own); counting every case is an index-only scan (`ix_cases_state_queue`,
    `ix_cases_next_due`), and the drill cases taken away are few (purged when their
    campaign closes) and found through `ix_cases_drill_campaign_id`. One statement, so
    one snapshot for both."""
    received = Case.received_on < today
    overdue = Case.next_due_on < today
    counts = union_all(
        select(literal("all"), Case.state, func.count()).where(received).group_by(Case.state),
        select(literal("drill"), Case.state, func.count()).where(and_(Case.is_drill, received)).group_by(Case.state),
        select(literal("all"), literal("overdue"), func.count()).where(overdue),
        select(literal("drill"), literal("overdue"), func.count()).where(and_(Case.is_drill, overdue)),
    )
    totals: dict[str, int] = {state.value: 0 for state in CaseState} | {"overdue": 0}
    for scope, key, count in (await session.execute(counts)).all():
        totals[key] = totals.get(key, 0) + (count if scope == "all" else -count)
    by_state = GaugeMetricFamily(
        "cleanwindow_cases",
        "Real cases (never drills) received before today, by state.",
        labels=["state"],
    )
    for state in CaseState:
        by_state.add_metric([state.value], totals[state.value])
    return [
        by_state,
        GaugeMetricFamily(
            "cleanwindow_cases_overdue",
            "Real cases (never drills) whose next deadline passed before today.",
            value=totals["overdue"],
        ),
    ]
