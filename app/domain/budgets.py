"""Budgets shared by all replicas, counted per window in PostgreSQL.

A budget row dates the activity it counts only to its window (at least an hour, like the
log timestamps), so windows are aligned to the epoch and every replica agrees on them.
"""

from __future__ import annotations

from datetime import datetime

# The kinds of shared budget.
SUBMISSIONS = "submissions"
RECEIPT_FAILURES = "receipt_failures"
# Reports sent from a page with a form ticket instead of proof of work.
FORM_SUBMISSIONS = "form_submissions"


def window_start(now: datetime, window_seconds: int) -> datetime:
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % window_seconds, now.tzinfo)
