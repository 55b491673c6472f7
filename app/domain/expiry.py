"""How long data that only serves for a while is kept. Pure rules; the `cleanup.expired`
job applies them (docs/jobs.md).

Every cutoff is "strictly before": a row exactly at the cutoff stays until the next run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from app.domain.budgets import window_start

# A retry of a report, or a challenge, arrives within a day at most (the challenge's TTL
# is capped at a day). After that, a stolen database plus a client's leaked
# Idempotency-Key must not give a receipt back, and a challenge logged in transit must
# not be matched to its case.
RETRY_DATA_DAYS = 1
# Uploads last at most an hour (the settings refuse more), so nothing staged two days
# ago, whatever the hour of either day, can still be streaming.
STALE_STAGING_DAYS = 2
# An expired or revoked token opens nothing and nothing reads it; its row only dates a
# staff session, which the audit log records already. A day's margin, then it goes.
ENDED_TOKEN_KEPT = timedelta(days=1)
# A sent notice is kept a month, so that "was I told?" can be answered; a dead one stays
# until an administrator deals with it.
SENT_NOTICE_KEPT = timedelta(days=30)
# Rows deleted or cleared per transaction: a run holds no lock for long and a crash loses
# one batch, which the next run does again.
BATCH_SIZE = 500


def retry_data_received_before(today: date) -> date:
    """Cases received before this date lose their retry data and challenge digest."""
    return today - timedelta(days=RETRY_DATA_DAYS)


def abandoned_staging_on_or_before(today: date) -> date:
    """Uploads staged on or before this date were abandoned (their process died)."""
    return today - timedelta(days=STALE_STAGING_DAYS)


def ended_budget_windows_before(now: datetime, window_seconds: int) -> datetime:
    """Budget rows of windows starting before this have ended: they are only a record of
    when people were active, which the service must not keep."""
    return window_start(now, window_seconds)


def ended_tokens_before(now: datetime) -> datetime:
    return now - ENDED_TOKEN_KEPT


def sent_notices_before(now: datetime) -> datetime:
    return now - SENT_NOTICE_KEPT
