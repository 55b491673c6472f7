"""The figures /metrics reads from the database at scrape time: the outbox, the jobs, the
audit check, cases by state. Drill cases never count, and a new report moves no figure
before the next day."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.domain.clock import utc_now
from app.jobs.catalogue import BY_NAME, JOBS
from app.jobs.models import JobRun
from app.jobs.runner import run_job
from app.main import create_app
from app.settings import Settings
from tests.cases.helpers import days_ago, insert_case
from tests.jobs.helpers import context_for, delivery, event

METRICS_TOKEN = "metrics-token-for-the-scraper-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
DATABASE_FAMILIES = (
    "cleanwindow_outbox_backlog",
    "cleanwindow_outbox_dead_letters",
    "cleanwindow_job_runs_total",
    "cleanwindow_job_failures_total",
    "cleanwindow_job_last_success_timestamp_seconds",
    "cleanwindow_audit_chain_ok",
    "cleanwindow_cases",
    "cleanwindow_cases_overdue",
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def from_database(samples: dict) -> dict:
    return {key: value for key, value in samples.items() if key[0].startswith(DATABASE_FAMILIES)}


def cases_by_state(samples: dict) -> dict[str, float]:
    return {dict(labels)["state"]: value for (name, labels), value in samples.items() if name == "cleanwindow_cases"}


async def seed_cases(sessionmaker, *, drill: bool = False, blind: bool = False) -> None:
    """Two received, one assessing, one closed, all received three days ago, and one of
    the received ones overdue; as real cases or as one campaign's drill cases."""
    extra = {"is_drill": True, "blind": blind} if drill else {}
    for state, overdue in (("received", True), ("received", False), ("assessing", False), ("closed", False)):
        due = {"next_due_on": days_ago(1)} if overdue else {}
        await insert_case(sessionmaker, received_on=days_ago(3), state=state, **due, **extra)


async def test_the_database_figures_appear_with_their_values(client: httpx.AsyncClient, sessionmaker) -> None:
    now = utc_now()
    await seed_cases(sessionmaker)
    await seed_cases(sessionmaker, drill=True, blind=True)
    await seed_cases(sessionmaker, drill=True, blind=False)
    async with sessionmaker() as session:
        session.add_all([event(now - timedelta(minutes=5)), event(now - timedelta(minutes=1))])
        session.add(event(now + timedelta(minutes=30)))  # held for its batch: not yet backlog
        session.add_all([delivery("pending", created_at=now) for _ in range(3)])
        session.add(delivery("dead", created_at=now - timedelta(days=3)))
        session.add_all([delivery("sent", created_at=now, sent_at=now) for _ in range(2)])
        session.add(JobRun(name="cleanup.expired", runs=5, failures=1, last_succeeded_at=now.replace(microsecond=0)))
        session.add(JobRun(name="audit.verify", runs=1, failures=0, last_result={"ok": False, "first_bad": 3}))
        await session.commit()

    samples = await scrape(client)
    assert samples[("cleanwindow_outbox_backlog", (("stage", "event"),))] == 2
    assert samples[("cleanwindow_outbox_backlog", (("stage", "delivery"),))] == 3
    assert samples[("cleanwindow_outbox_dead_letters", ())] == 1
    runs = {dict(labels)["job"]: value for (name, labels), value in samples.items() if name == "cleanwindow_job_runs_total"}
    assert runs == {job.name: 0 for job in JOBS} | {"cleanup.expired": 5, "audit.verify": 1}
    assert samples[("cleanwindow_job_failures_total", (("job", "cleanup.expired"),))] == 1
    assert samples[("cleanwindow_job_failures_total", (("job", "audit.verify"),))] == 0
    succeeded = {
        dict(labels)["job"]: value
        for (name, labels), value in samples.items()
        if name == "cleanwindow_job_last_success_timestamp_seconds"
    }
    assert succeeded == {"cleanup.expired": now.replace(microsecond=0).timestamp()}
    assert samples[("cleanwindow_audit_chain_ok", ())] == 0
    # Real cases only: the two campaigns' cases, blind and announced, are not counted.
    assert cases_by_state(samples) == {
        "received": 2, "acknowledged": 0, "assessing": 1, "investigating": 0, "referred": 0, "closed": 1,
    }
    assert samples[("cleanwindow_cases_overdue", ())] == 1
    assert samples[("cleanwindow_scrape_collector_up", (("collector", "database"),))] == 1


async def test_a_blind_drill_moves_no_figure(client: httpx.AsyncClient, sessionmaker) -> None:
    """Whoever reads metrics must not see a drill report arrive or go overdue."""
    await seed_cases(sessionmaker)
    before = from_database(await scrape(client))
    await seed_cases(sessionmaker, drill=True, blind=True)
    assert from_database(await scrape(client)) == before


async def test_a_new_report_counts_from_the_next_day(app, client: httpx.AsyncClient, sessionmaker, clock) -> None:
    """Polled every few seconds, a count that moved with each report would date it to the
    scrape; the database dates it to the day, and so do the metrics."""
    await insert_case(sessionmaker, received_on=days_ago(0))
    assert cases_by_state(await scrape(client))["received"] == 0
    clock.now += timedelta(days=1)
    assert cases_by_state(await scrape(client))["received"] == 1


async def test_the_audit_gauge_is_absent_until_the_job_ran_then_follows_it(
    fresh_database_url: str, settings: Settings, key_derivation
) -> None:
    engine = create_async_engine(fresh_database_url)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app = create_app(settings, sessionmaker=sessionmaker, key_derivation=key_derivation)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert ("cleanwindow_audit_chain_ok", ()) not in await scrape(client)
            await run_job(context_for(settings, sessionmaker), BY_NAME["audit.verify"])
            samples = await scrape(client)
            assert samples[("cleanwindow_audit_chain_ok", ())] == 1
            assert samples[("cleanwindow_job_runs_total", (("job", "audit.verify"),))] == 1
            assert ("cleanwindow_job_last_success_timestamp_seconds", (("job", "audit.verify"),)) in samples

            # The check then fails to run (the head row gone, a timeout): its last verdict
            # no longer stands, so the gauge says 0 rather than "intact".
            async with sessionmaker() as session:
                run = await session.get(JobRun, "audit.verify")
                run.last_finished_at = run.last_succeeded_at + timedelta(days=1)
                run.failures += 1
                await session.commit()
            assert (await scrape(client))[("cleanwindow_audit_chain_ok", ())] == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"])
async def test_the_database_figures_need_the_token_too(
    client: httpx.AsyncClient, sessionmaker, headers: dict[str, str]
) -> None:
    await seed_cases(sessionmaker)
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert not any(family in response.text for family in DATABASE_FAMILIES)


async def test_without_a_configured_token_there_are_no_metrics_at_all(settings: Settings, sessionmaker) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": None}), sessionmaker=sessionmaker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 404
    assert not any(family in response.text for family in DATABASE_FAMILIES)


async def test_a_database_outage_leaves_the_process_metrics_and_says_so(settings: Settings) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    app = create_app(settings, sessionmaker=async_sessionmaker(engine))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await client.get("/healthz")
            samples = await scrape(client)
    finally:
        await engine.dispose()
    assert samples[("cleanwindow_scrape_collector_up", (("collector", "database"),))] == 0
    assert from_database(samples) == {}
    assert any(name == "cleanwindow_http_requests_total" for name, _ in samples)

