"""The `cleanup.expired` job: data that only serves for a while, removed on a timer rather
than as a side effect of requests, so that it goes whether or not anyone comes.

Each feature says what of its own has expired (`app/<feature>/housekeeping.py`, rules
in `app/domain/expiry.py`); this composes them. Every step runs in short
transactions of its own, one batch each, and picks its rows with `FOR UPDATE SKIP
LOCKED` (or a plain delete whose loser finds nothing left): two workers at once split the
work, a crash loses one batch that the next run does again, and a second run finds
nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.housekeeping import write_ended_windows
from app.cases.housekeeping import discard_abandoned_uploads
from app.context import AppContext
from app.db.session import own_transaction
from app.domain.expiry import BATCH_SIZE
from app.intake.housekeeping import delete_ended_budget_windows, forget_retry_data
from app.jobs.registry import JobResult
from app.notifications.housekeeping import delete_old_sent_deliveries
from app.staff.housekeeping import delete_ended_tokens

logger = logging.getLogger("cleanwindow.jobs")

Step = Callable[[AsyncSession, AppContext, datetime], Awaitable[int]]

# What each count in the result means: rows changed by that step in this run.
STEPS: tuple[tuple[str, Step], ...] = (
    ("retry_data_forgotten", lambda session, context, now: forget_retry_data(session, context.settings, now)),
    ("budget_windows_deleted", lambda session, context, now: delete_ended_budget_windows(session, context.settings, now)),
    ("staged_uploads_discarded", lambda session, context, now: discard_abandoned_uploads(session, context.settings, now)),
    ("audit_windows_written", lambda session, context, now: write_ended_windows(session, now)),
    ("staff_tokens_deleted", lambda session, context, now: delete_ended_tokens(session, now)),
    ("sent_deliveries_deleted", lambda session, context, now: delete_old_sent_deliveries(session, now)),
)


async def cleanup_expired(context: AppContext) -> JobResult:
    """Runs every step; a step that fails does not keep the others from running (the
    privacy of one must not wait on another), and the run then fails with the first
    error so that it is counted."""
    now = context.clock()
    result: JobResult = {}
    errors: list[Exception] = []
    for name, step in STEPS:
        try:
            result[name] = await _in_batches(context, step, now)
        except Exception as error:
            logger.exception("cleanup step failed", extra={"job": "cleanup.expired", "step": name})
            errors.append(error)
    if errors:
        raise errors[0]
    return result


async def _in_batches(context: AppContext, step: Step, now: datetime) -> int:
    total = 0
    while True:
        async with own_transaction(context.sessionmaker) as session:
            done = await step(session, context, now)
        total += done
        if done < BATCH_SIZE:
            return total
