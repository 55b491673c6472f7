"""Random sequences of campaign actions over the real API, held to the table.

Hypothesis draws walks of coordinator actions (pause, resume, close), injections, and
moves of the clock past the window's start and end; each walk runs on a campaign of its
own. After every step the answer, the campaign as the API shows it, and the rows stored
(the campaign and its history) must match a model built from the table in
tests/domain/test_drills.py, which is written out there as plain data, not imported from
the app.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.domain.staff import Role
from app.drills.models import DrillCampaign, DrillCampaignTransition
from tests.conftest import examples
from tests.domain.test_drills import TABLE
from tests.drills.helpers import campaign_body

T = TypeVar("T")
STEPS = ("pause", "resume", "close", "inject", "window_opens", "window_closes")
WALKS = examples(thorough=60)


async def test_random_campaign_walks_follow_the_table(client, staff, sessionmaker, clock) -> None:
    headers = await staff.headers_for(Role.DRILL_COORDINATOR)
    loop = asyncio.get_running_loop()
    outcomes: Counter[str] = Counter()

    def run(coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    base = clock.now

    async def walk(steps: list[str], already_open: bool) -> None:
        clock.now = base  # every walk starts at the same instant, well within the login's life
        start = clock.now + (timedelta(minutes=-1) if already_open else timedelta(minutes=5))
        body = campaign_body(starts_at=start, ends_at=start + timedelta(minutes=20))
        created = await client.post("/api/v1/drills", json=body, headers=headers)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        # A campaign created inside its window is started at once (the clock's step).
        stored = "running" if already_open else "scheduled"
        window_open, window_over = already_open, False

        def effective() -> str:
            return "running" if stored == "scheduled" and (window_open or window_over) else stored

        for step in steps:
            if step == "window_opens":
                window_open = not window_over  # time runs one way
                clock.now = max(clock.now, start + timedelta(seconds=1))
                continue
            if step == "window_closes":
                window_open, window_over = False, True
                clock.now = start + timedelta(minutes=20, seconds=1)
                continue
            if step == "inject":
                response = await client.post(f"/api/v1/drills/{cid}/inject", json={}, headers=headers)
                accepting = effective() == "running" and window_open
                assert response.status_code == (201 if accepting else 403), (steps, step, response.text)
                outcomes[f"inject {response.status_code}"] += 1
                continue
            response = await client.post(f"/api/v1/drills/{cid}/{step}", headers=headers)
            target = TABLE.get((effective(), step))
            if target is None:
                assert response.status_code == 409, (steps, step, response.text)
                allowed = [a for a in ("pause", "resume", "close") if (effective(), a) in TABLE]
                assert response.json()["allowed_actions"] == allowed
            else:
                assert response.status_code == 200, (steps, step, response.text)
                stored = target
                assert response.json()["state"] == target
            outcomes[f"{step} {response.status_code}"] += 1

            shown = (await client.get(f"/api/v1/drills/{cid}", headers=headers)).json()
            assert shown["state"] == effective(), (steps, step)
            assert shown["accepting_reports"] is (effective() == "running" and window_open)
            async with sessionmaker() as session:
                campaign = await session.get(DrillCampaign, cid, populate_existing=True)
                history = (
                    await session.scalars(
                        select(DrillCampaignTransition)
                        .where(DrillCampaignTransition.campaign_id == campaign.id)
                        .order_by(DrillCampaignTransition.version)
                    )
                ).all()
            # The stored state is the model's, and the history chains from `scheduled`
            # through allowed steps only, one version each.
            assert campaign.state == stored or (campaign.state == "scheduled" and effective() == "running")
            state, version = "scheduled", 1
            for row in history:
                assert (row.from_state, row.action) in TABLE and TABLE[(row.from_state, row.action)] == row.to_state
                assert row.from_state == state and row.version == version + 1
                state, version = row.to_state, row.version
            assert state == campaign.state and version == campaign.version
            assert (campaign.closed_at is not None) is (campaign.state == "closed")

    @settings(
        max_examples=WALKS,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.sampled_from(STEPS), min_size=1, max_size=12), st.booleans())
    # Walks that reach every outcome whatever the draws, so the check below cannot flake.
    @example(["inject", "pause", "pause", "inject", "resume", "resume", "inject", "close", "close"], True)
    @example(["inject", "pause", "window_opens", "resume", "inject", "window_closes", "inject"], False)
    def walks(steps: list[str], already_open: bool) -> None:
        run(walk(steps, already_open))

    await asyncio.to_thread(walks)
    # The walks went everywhere: every action both taken and refused, injections both ways.
    for step in ("pause", "resume", "close"):
        assert outcomes[f"{step} 200"] and outcomes[f"{step} 409"], outcomes
    assert outcomes["inject 201"] and outcomes["inject 403"], outcomes
