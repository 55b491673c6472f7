"""The `drills.purge` job on a real database, over campaigns and cases made through the
API: a campaign left open past the grace after its end is closed as its coordinator's
close would close it (scorecard frozen, cases purged, audited, by no one), once however
many workers run; everything else is left as it was."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEntry
from app.audit.service import AuditLog
from app.cases.models import Case
from app.context import AppContext
from app.domain.clock import utc_now
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.staff import Role
from app.drills.housekeeping import purge_finished_campaigns
from app.drills.models import DrillCampaign, DrillCampaignTransition
from app.jobs.catalogue import BY_NAME
from tests.cases.helpers import insert_case, register_key
from tests.conftest import FixedClock, LiveService, StaffFactory
from tests.drills.helpers import create_campaign, inject
from tests.intake.helpers import report_body, submit_ok

GRACE = timedelta(days=30)  # the default of CLEANWINDOW_DRILLS__CLOSE_AFTER_DAYS


@pytest.fixture
async def coordinator(live: LiveService, password_hashing, strong_password_hash) -> dict[str, str]:
    staff = StaffFactory(live.sessionmaker, live.client, password_hashing, strong_password_hash)
    # Drill reports are sealed to triage, like real ones.
    await register_key(live.client, await staff.headers_for(Role.TRIAGE))
    return await staff.headers_for(Role.DRILL_COORDINATOR)


@pytest.fixture
def job(live: LiveService) -> AppContext:
    """A worker on the same database, with a clock of its own the test moves."""
    return AppContext.build(
        live.settings, live.sessionmaker, clock=FixedClock(utc_now()), key_derivation=TEST_KEY_DERIVATION
    )


async def campaign(live: LiveService, campaign_id: str) -> DrillCampaign:
    async with live.sessionmaker() as session:
        return await session.get(DrillCampaign, uuid.UUID(campaign_id))


async def drill_cases(live: LiveService, campaign_id: str) -> int:
    async with live.sessionmaker() as session:
        return await session.scalar(
            select(func.count()).select_from(Case).where(Case.drill_campaign_id == uuid.UUID(campaign_id))
        )


async def audit_entries(live: LiveService, campaign_id: str) -> list[tuple]:
    async with live.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.details["campaign_id"].astext == campaign_id)
                .order_by(AuditEntry.seq)
            )
        ).all()
    return [(row.action, row.actor_id, row.details) for row in rows]


async def test_a_campaign_left_open_past_the_grace_is_closed_once_and_the_rest_left_alone(
    live: LiveService, coordinator: dict[str, str], job: AppContext
) -> None:
    now = job.clock()
    ended = await create_campaign(live.client, coordinator, now=now, ends_at=now + timedelta(hours=1))
    for number in (1, 2):
        await inject(live.client, coordinator, ended["id"], number)
    # Its window never opened for the service (nobody looked): still `scheduled`.
    never_started = await create_campaign(
        live.client, coordinator, starts_at=now + timedelta(minutes=10), ends_at=now + timedelta(hours=2)
    )
    recent = await create_campaign(live.client, coordinator, now=now, ends_at=now + timedelta(days=10))
    await inject(live.client, coordinator, recent["id"], 1)
    real_receipt = await submit_ok(live.client, report_body(marker="REAL"))
    real = await insert_case(live.sessionmaker, acknowledge_due_on=now.date())
    async with live.sessionmaker() as session:
        real_cases_before = (await session.scalars(select(Case.id).where(Case.is_drill.is_(False)))).all()
    assert len(real_cases_before) == 2 and real_receipt

    # A month after the first two ended, and a minute past the grace.
    job.clock.now = now + timedelta(hours=2) + GRACE + timedelta(minutes=1)
    results = await asyncio.gather(purge_finished_campaigns(job), purge_finished_campaigns(job))

    assert sorted(result["campaigns_closed"] for result in results) in ([0, 2], [1, 1])
    assert sum(result["cases_purged"] for result in results) == 2
    closed = await campaign(live, ended["id"])
    assert (closed.state, closed.closed_at, closed.purged_cases) == ("closed", job.clock.now, 2)
    assert await drill_cases(live, ended["id"]) == 0
    # The scorecard was frozen before the purge, with the cases it counted.
    assert closed.scorecard["frozen"] is True
    assert (closed.scorecard["totals"]["drill_cases"], closed.scorecard["totals"]["injected"]) == (2, 2)
    card = await live.client.get(f"/api/v1/drills/{ended['id']}/scorecard", headers=coordinator)
    assert card.json() == closed.scorecard
    # Audited by no one, once: the close and the purge.
    audited = [entry for entry in await audit_entries(live, ended["id"]) if entry[0] != "drill.created"]
    assert audited == [
        (
            "drill.transition",
            None,
            {
                "campaign_id": ended["id"],
                "action": "close",
                "from_state": "running",
                "to_state": "closed",
                "version": 3,
                "automatic": True,
            },
        ),
        ("drill.purged", None, {"campaign_id": ended["id"], "purged_cases": 2, "automatic": True}),
    ]
    # The campaign's history records the close with no actor, as it records the clock's start.
    async with live.sessionmaker() as session:
        history = (
            await session.execute(
                select(
                    DrillCampaignTransition.action, DrillCampaignTransition.version, DrillCampaignTransition.actor_id
                ).where(
                    DrillCampaignTransition.campaign_id == closed.id
                )
            )
        ).all()
        verification = await AuditLog(session).verify()
    assert sorted(history) == [("close", 3, None), ("start", 2, None)] and closed.version == 3
    assert verification.ok, verification

    # The one that was never started is started by the clock, then closed, like the first.
    assert (await campaign(live, never_started["id"])).state == "closed"
    steps = [
        (details["from_state"], details["action"], actor)
        for action, actor, details in await audit_entries(live, never_started["id"])
        if action == "drill.transition"
    ]
    assert steps == [("running", "close", None)]
    # Within the grace: untouched, its case still in the queue.
    assert (await campaign(live, recent["id"])).state == "running"
    assert await drill_cases(live, recent["id"]) == 1
    assert [entry[0] for entry in await audit_entries(live, recent["id"])] == ["drill.created"]
    # Real cases: all there, content and all.
    async with live.sessionmaker() as session:
        real_after = (await session.scalars(select(Case).where(Case.is_drill.is_(False)))).all()
    assert sorted(case.id for case in real_after) == sorted(real_cases_before)
    assert all(case.sealed_report is not None and case.purged_on is None for case in real_after)
    assert real.id in {case.id for case in real_after}

    # Again, later: nothing left to do.
    job.clock.now += timedelta(days=1)
    assert await purge_finished_campaigns(job) == {
        "campaigns_closed": 0,
        "cases_purged": 0,
        "leftover_cases_purged": 0,
    }


async def test_a_closed_campaign_that_still_holds_drill_cases_has_them_purged(
    live: LiveService, coordinator: dict[str, str], job: AppContext
) -> None:
    now = job.clock()
    created = await create_campaign(live.client, coordinator, now=now)
    await inject(live.client, coordinator, created["id"], 1)
    await inject(live.client, coordinator, created["id"], 2)
    # What should not happen: closed without its purge (by hand, or a bug).
    async with live.sessionmaker() as session:
        await session.execute(
            update(DrillCampaign)
            .where(DrillCampaign.id == uuid.UUID(created["id"]))
            .values(state="closed", closed_at=now, purged_cases=0)
        )
        await session.commit()

    results = await asyncio.gather(purge_finished_campaigns(job), purge_finished_campaigns(job))

    assert sum(result["leftover_cases_purged"] for result in results) == 2
    assert await drill_cases(live, created["id"]) == 0
    assert (await campaign(live, created["id"])).purged_cases == 2
    assert [entry for entry in await audit_entries(live, created["id"]) if entry[0] == "drill.purged"] == [
        ("drill.purged", None, {"campaign_id": created["id"], "purged_cases": 2, "automatic": True})
    ]


async def test_a_coordinator_closing_it_first_leaves_the_job_nothing_to_do(
    live: LiveService, coordinator: dict[str, str], job: AppContext
) -> None:
    now = job.clock()
    created = await create_campaign(live.client, coordinator, now=now, ends_at=now + timedelta(hours=1))
    await inject(live.client, coordinator, created["id"], 1)
    response = await live.client.post(f"/api/v1/drills/{created['id']}/close", headers=coordinator)
    assert response.status_code == 200, response.text
    job.clock.now = now + GRACE + timedelta(days=1)

    assert await purge_finished_campaigns(job) == {
        "campaigns_closed": 0,
        "cases_purged": 0,
        "leftover_cases_purged": 0,
    }
    purges = [entry for entry in await audit_entries(live, created["id"]) if entry[0] == "drill.purged"]
    assert [(actor is not None, details["purged_cases"]) for _, actor, details in purges] == [(True, 1)]


def test_the_job_is_in_the_catalogue() -> None:
    job = BY_NAME["drills.purge"]
    assert job.run is purge_finished_campaigns and job.schedule == "15 * * * *"
