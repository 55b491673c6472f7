"""The organisation's calendar: an instant becomes a date in the organisation's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.domain.clock import organisation_date, organisation_zone
from app.domain.triage import Deadlines, acknowledgement_due, feedback_due

SEOUL = organisation_zone("Asia/Seoul")


def test_a_morning_in_seoul_is_that_day_not_the_utc_day_before() -> None:
    half_past_eight_kst = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert organisation_date(half_past_eight_kst, SEOUL) == date(2026, 11, 28)
    assert organisation_date(half_past_eight_kst, organisation_zone("UTC")) == date(2026, 11, 27)


def test_the_date_turns_at_midnight_in_the_zone() -> None:
    midnight_kst = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert organisation_date(midnight_kst - timedelta(microseconds=1), SEOUL) == date(2026, 11, 27)
    assert organisation_date(midnight_kst, SEOUL) == date(2026, 11, 28)
    # The same instant given with another offset is the same date.
    assert organisation_date(midnight_kst.astimezone(timezone(timedelta(hours=-5))), SEOUL) == date(2026, 11, 28)


def test_the_zone_s_daylight_saving_time_is_followed() -> None:
    paris = organisation_zone("Europe/Paris")
    # 23:30 UTC is 00:30 the next day in Paris in winter (UTC+1), 01:30 in summer (UTC+2);
    # 22:30 UTC is still the same day in winter, already the next in summer.
    assert organisation_date(datetime(2026, 1, 10, 22, 30, tzinfo=UTC), paris) == date(2026, 1, 10)
    assert organisation_date(datetime(2026, 7, 10, 22, 30, tzinfo=UTC), paris) == date(2026, 7, 11)


def test_a_naive_datetime_is_refused_rather_than_read_in_the_host_s_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        organisation_date(datetime(2026, 11, 27, 23, 30), SEOUL)


def test_overdue_turns_at_the_organisation_s_midnight_not_utc_midnight() -> None:
    received_on = date(2026, 11, 20)
    due = acknowledgement_due(received_on, 7)
    assert due == date(2026, 11, 27)
    waiting = Deadlines(due, None, feedback_due(due, None, 3), None, closed=False)
    last_moment_of_the_due_day = datetime(2026, 11, 27, 14, 59, 59, 999999, tzinfo=UTC)  # 23:59:59 KST
    next_midnight = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 00:00 KST on the 28th
    assert not waiting.overdue(organisation_date(last_moment_of_the_due_day, SEOUL))
    assert waiting.overdue(organisation_date(next_midnight, SEOUL))
    # In UTC terms that midnight is 15:00 on the due day itself: a UTC date would wait
    # until 09:00 KST to call the case overdue.
    assert not waiting.overdue(next_midnight.date())


@pytest.mark.parametrize("name", ["Asia/Seoul", "UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT-9"])
def test_iana_zones_are_accepted(name: str) -> None:
    assert organisation_zone(name).key == name


@pytest.mark.parametrize(
    "name",
    ["", "Mars/Olympus_Mons", "asia/seoul ", "KST", "+09:00", "Asia", "/etc/localtime", "../../etc/passwd",
     "Asia/../Asia/Seoul", "localtime", "posixrules", "Asia/Seoul\x00"],
)
def test_anything_else_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match="is not an IANA time zone") as refused:
        organisation_zone(name)
    assert repr(name) in str(refused.value)
