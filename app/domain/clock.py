"""Instants, and the organisation's calendar.

Instants are UTC: stored as `timestamptz`, answered as RFC 3339 times. Calendar dates (the
day a report was received, a message sent, a deadline, whether a case is overdue) are the
organisation's, in its time zone (`CLEANWINDOW_TIMEZONE`): a report filed at 08:00 in
Seoul is received that day, not the day before as its UTC date would say, and a deadline
passes at midnight in Seoul, not at 09:00. `organisation_date` is the one place an instant
becomes a date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Seoul"

# Files of the host's zone database that load like zones but are not IANA zone names:
# `localtime` is whatever zone the machine (often a UTC container) happens to be in.
_HOST_FILES = frozenset({"localtime", "posixrules"})

Clock = Callable[[], datetime]
"""Returns the current instant, time-zone aware. The app's is `utc_now`; tests set their own."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def organisation_zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name` (`Asia/Seoul`); ValueError naming it otherwise."""
    refused = ValueError(f"{name!r} is not an IANA time zone name such as Asia/Seoul, Europe/Paris or UTC")
    if name in _HOST_FILES:
        raise refused
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, a path, a directory
        raise refused from None


def organisation_date(instant: datetime, zone: ZoneInfo) -> date:
    """The organisation's date at `instant`."""
    if instant.utcoffset() is None:
        # A naive time would silently be read in the host's zone: the very bug this avoids.
        raise ValueError("an instant needs a time zone; naive datetimes are not instants")
    return instant.astimezone(zone).date()
