"""What a periodic job is. The list of them is app/jobs/catalogue.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.context import AppContext

# What a run reports: counts only (cases purged, notices sent), never content.
JobResult = dict[str, int | bool | str | None]


@dataclass(frozen=True)
class PeriodicJob:
    """A job run on a schedule by whichever worker gets it first, and by
    `cleanwindow jobs run NAME`. `run` must be idempotent: running it twice in a row, or
    again after a crash half-way, does no harm and no double work."""

    name: str
    # Cron, five fields (or six, seconds last), in UTC; CLEANWINDOW_JOBS__SCHEDULES
    # replaces it per job.
    schedule: str
    description: str
    run: Callable[[AppContext], Awaitable[JobResult]]
