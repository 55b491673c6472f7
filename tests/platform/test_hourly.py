"""Reporter-side figures move only when a clock hour ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from app.platform.cpu import CpuBudget
from app.platform.hourly import CompletedHours, HourFigures
from app.settings import Settings
from tests.intake.helpers import report_body, submit_ok

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
METRICS_TOKEN = "metrics-token-for-the-scraper-0123456789abcdef"


def test_an_hour_is_told_only_once_it_has_ended() -> None:
    hours = CompletedHours()
    hours.observe(T0 + timedelta(minutes=5), 0.5)
    hours.observe(T0 + timedelta(minutes=50), 1.5)
    assert hours.last_completed(T0 + timedelta(minutes=59)) == HourFigures()
    assert hours.last_completed(T0 + timedelta(hours=1, minutes=1)) == HourFigures(2, 2.0, 1.5)
    hours.observe(T0 + timedelta(hours=1, minutes=30), 0.25)  # the new hour stays hidden
    assert hours.last_completed(T0 + timedelta(hours=1, minutes=31)) == HourFigures(2, 2.0, 1.5)
    assert hours.last_completed(T0 + timedelta(hours=2)) == HourFigures(1, 0.25, 0.25)


def test_a_figure_once_told_never_moves() -> None:
    hours = CompletedHours()
    hours.observe(T0 + timedelta(minutes=5))
    assert hours.last_completed(T0 + timedelta(hours=1)) == HourFigures(1, 0.0, 0.0)
    hours.observe(T0 + timedelta(minutes=59, seconds=59))  # began before the hour turned: dropped
    hours.observe(T0 - timedelta(hours=3))
    assert hours.last_completed(T0 + timedelta(hours=1, minutes=1)) == HourFigures(1, 0.0, 0.0)
    assert hours.last_completed(T0 + timedelta(hours=2)) == HourFigures()


def test_an_hour_without_activity_reads_zero() -> None:
    hours = CompletedHours()
    hours.observe(T0 + timedelta(minutes=5))
    assert hours.last_completed(T0 + timedelta(hours=2, minutes=1)) == HourFigures()


async def test_the_hash_budget_records_waits_and_refusals_by_hour() -> None:
    now = [T0 + timedelta(minutes=10)]
    budget = CpuBudget(1, max_wait_seconds=0.05, clock=lambda: now[0])
    assert await budget.run(sum, [1, 2]) == 3
    async with budget.slot():
        with pytest.raises(Exception):
            await budget.run(sum, [1])
    assert budget.waits.last_completed(now[0]) == HourFigures()
    now[0] = T0 + timedelta(hours=1)
    figures = budget.waits.last_completed(now[0])
    assert figures.count == 2 and figures.total < 0.05
    assert budget.refusals.last_completed(now[0]).count == 1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


def gauge(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_a_submission_shows_in_metrics_only_after_its_hour_ends(client: httpx.AsyncClient, clock) -> None:
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    clock.now = clock.now.replace(minute=1, second=0)
    before = (await client.get("/metrics", headers=scraper)).text
    await submit_ok(client, report_body("HOURLY"))
    await asyncio.sleep(0)
    during = (await client.get("/metrics", headers=scraper)).text
    assert gauge(during, "cleanwindow_intake_reports_last_hour") == gauge(before, "cleanwindow_intake_reports_last_hour")
    clock.now = clock.now + timedelta(hours=1)
    after = (await client.get("/metrics", headers=scraper)).text
    assert gauge(after, "cleanwindow_intake_reports_last_hour") == 1
