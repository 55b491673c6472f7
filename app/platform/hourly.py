"""Figures about reporter-side work, told only for the last completed clock hour.

A counter scraped every 15 s would store each submission's time in Prometheus to the
scrape interval, finer than anything the service keeps (dates on the reporter side, log
lines released in hourly batches). These figures instead change only when an hour ends:
during the hour in which a report arrives, nothing moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


def hour_of(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class HourFigures:
    count: int = 0
    total: float = 0.0
    largest: float = 0.0


class CompletedHours:
    """Counts (and sums, and the largest of) observations per clock hour of UTC, and
    tells the figures of the hour before the current one, zero if nothing happened then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # observed from the event loop and the hashing threads
        self._hour: datetime | None = None
        self._current = HourFigures()
        self._previous = HourFigures()
        self._previous_hour: datetime | None = None

    def _roll(self, hour: datetime) -> None:
        if self._hour is not None and hour <= self._hour:
            return
        before = hour - timedelta(hours=1)
        # The hour just ended is the one being counted, or one with nothing in it.
        self._previous = self._current if self._hour == before else HourFigures()
        self._previous_hour, self._hour, self._current = before, hour, HourFigures()

    def observe(self, now: datetime, value: float = 0.0) -> None:
        hour = hour_of(now)
        with self._lock:
            self._roll(hour)
            # A request that began before the hour turned and ends after it is dropped:
            # adding it to an hour already told would move a published figure, and the
            # move would date the request.
            if hour == self._hour:
                current = self._current
                self._current = HourFigures(current.count + 1, current.total + value, max(current.largest, value))

    def last_completed(self, now: datetime) -> HourFigures:
        hour = hour_of(now)
        with self._lock:
            self._roll(hour)
            # Asked with a clock that went back, tell nothing rather than the wrong hour.
            return self._previous if self._previous_hour == hour - timedelta(hours=1) else HourFigures()
