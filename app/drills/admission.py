"""Admitting a drill report into intake: the one door between drills and the intake path.

Intake asks `DrillAdmission` twice. First, before any expensive work and without locks,
whether a presented token or code is valid now (`check`): a refusal then costs nothing
and stores nothing. Then, in the transaction that stores the case, `claim` takes it for
good under a lock: the campaign must still take reports (a pause or close that committed
meanwhile wins), a code must still be unused (two reports with one code leave exactly one
winner), and the drill case's own row is written beside the case.

Every refusal is the same `DrillTokenRejected`: unknown, used, paused, closed and
out-of-window look alike to whoever is guessing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.drills import (
    CampaignState,
    Decision,
    DrillTokenRejected,
    SecretKind,
    Source,
    Window,
    accepts_reports,
    kind_of,
    normalise,
    secret_digest,
)
from app.domain.errors import InvalidInput, NotFound
from app.drills.models import DrillCampaign, DrillCase, DrillParticipantCode

REFUSED = "This drill token or code is not valid now; the report was not accepted."


@dataclass(frozen=True)
class DrillEntry:
    """A drill report on its way in."""

    campaign_id: uuid.UUID
    blind: bool
    source: Source
    # The participant code's scenario, or the injected one; None for a report sent with
    # the injection token, which is scored against the next scenario in turn.
    scenario: int | None
    code_digest: bytes | None = None
    # What `POST /drills/{id}/inject` submits: the scenario's report.
    report: dict[str, Any] | None = None
    # The round-robin turn an injection took before its report was sealed, if any:
    # given back (`give_back_turn`) when the injection then fails.
    turn: int | None = None

    @property
    def waives_proof_of_work(self) -> bool:
        # An injection is the coordinator's own act; a participant files like anyone.
        return self.source is Source.INJECTION


def _window(campaign: DrillCampaign) -> Window:
    return Window(campaign.starts_at, campaign.ends_at)


def _takes_reports(campaign: DrillCampaign | None, now: datetime) -> bool:
    return campaign is not None and accepts_reports(CampaignState(campaign.state), _window(campaign), now)


def participant_received_at(now: datetime) -> datetime:
    """A participant's report is timed from the start of its hour (see DrillCase)."""
    return now.replace(minute=0, second=0, microsecond=0)


class DrillAdmission:
    def __init__(self, session: AsyncSession, secret_key: bytes):
        self.session = session
        self.secret_key = secret_key

    async def check(self, presented: str, now: datetime) -> DrillEntry:
        """A token or code from `X-Drill-Token`: valid now, or DrillTokenRejected."""
        canonical = normalise(presented)
        if canonical is None:
            raise DrillTokenRejected(REFUSED)
        digest = secret_digest(self.secret_key, canonical)
        if kind_of(canonical) is SecretKind.TOKEN:
            campaign = await self.session.scalar(select(DrillCampaign).where(DrillCampaign.token_digest == digest))
            if not _takes_reports(campaign, now):
                raise DrillTokenRejected(REFUSED)
            return DrillEntry(campaign.id, campaign.blind, Source.INJECTION, scenario=None)
        code = await self.session.get(DrillParticipantCode, digest)
        if code is None or code.decision is not None:
            raise DrillTokenRejected(REFUSED)
        campaign = await self.session.get(DrillCampaign, code.campaign_id)
        if not _takes_reports(campaign, now):
            raise DrillTokenRejected(REFUSED)
        return DrillEntry(campaign.id, campaign.blind, Source.PARTICIPANT, code.scenario, code_digest=digest)

    async def for_injection(
        self, campaign_id: uuid.UUID, coordinator_id: uuid.UUID, scenario: int | None, now: datetime
    ) -> DrillEntry:
        """The coordinator's `POST /drills/{id}/inject`: their own campaign only."""
        campaign = await self.session.get(DrillCampaign, campaign_id)
        if campaign is None or campaign.created_by_id != coordinator_id:
            raise NotFound("No such drill campaign among yours.")
        if scenario is not None and not 1 <= scenario <= len(campaign.scenarios):
            raise InvalidInput(
                f"This campaign has scenarios 1 to {len(campaign.scenarios)}.", field="scenario"
            )
        if not _takes_reports(campaign, now):
            raise DrillTokenRejected(
                "This campaign does not take drill reports now (it is paused, closed, or "
                "outside its window); nothing was injected."
            )
        if scenario is None:
            # The next turn of the round robin, taken now (the report to seal depends on
            # it), atomically: two injections at once get two turns. An injection that
            # then fails gives its turn back.
            turn = await self.session.scalar(
                update(DrillCampaign)
                .where(DrillCampaign.id == campaign.id)
                .values(injections=DrillCampaign.injections + 1)
                .returning(DrillCampaign.injections)
            )
            scenario = (turn - 1) % len(campaign.scenarios) + 1
        else:
            turn = None
        report = campaign.scenarios[scenario - 1]["report"]
        return DrillEntry(campaign.id, campaign.blind, Source.INJECTION, scenario, report=report, turn=turn)

    async def give_back_turn(self, entry: DrillEntry) -> None:
        """An injection that took a turn and then failed (refused under the lock, or any
        error) leaves the counter as it found it, unless a later turn was taken meanwhile."""
        if entry.turn is not None:
            await self.session.execute(
                update(DrillCampaign)
                .where(DrillCampaign.id == entry.campaign_id, DrillCampaign.injections == entry.turn)
                .values(injections=entry.turn - 1)
            )

    async def claim(self, entry: DrillEntry, now: datetime) -> int:
        """Take the token or code for good, in the transaction that stores the case."""
        if entry.source is Source.INJECTION:
            # The row lock (the counter's UPDATE when this report takes a turn): concurrent
            # injections queue here, and a close holding the row makes them wait, then
            # see it closed.
            if entry.scenario is None:  # the injection token: scored against the next turn
                row = (
                    await self.session.execute(
                        update(DrillCampaign)
                        .where(DrillCampaign.id == entry.campaign_id)
                        .values(injections=DrillCampaign.injections + 1)
                        .returning(DrillCampaign)
                    )
                ).scalar_one()
            else:
                row = await self.session.scalar(
                    select(DrillCampaign)
                    .where(DrillCampaign.id == entry.campaign_id)
                    .with_for_update(key_share=True)
                )
            if not _takes_reports(row, now):
                raise DrillTokenRejected(REFUSED)
            return entry.scenario or (row.injections - 1) % len(row.scenarios) + 1
        campaign = await self.session.scalar(
            select(DrillCampaign).where(DrillCampaign.id == entry.campaign_id).with_for_update(read=True)
        )
        if not _takes_reports(campaign, now):
            raise DrillTokenRejected(REFUSED)
        taken = await self.session.execute(
            update(DrillParticipantCode)
            .where(DrillParticipantCode.digest == entry.code_digest, DrillParticipantCode.decision.is_(None))
            .values(used=True, decision=Decision.REPORTED.value)
        )
        if taken.rowcount != 1:
            raise DrillTokenRejected(REFUSED)
        assert entry.scenario is not None
        return entry.scenario

    async def record_case(self, case_id: uuid.UUID, entry: DrillEntry, scenario: int, now: datetime) -> None:
        received_at = now if entry.source is Source.INJECTION else participant_received_at(now)
        self.session.add(
            DrillCase(
                case_id=case_id,
                campaign_id=entry.campaign_id,
                scenario=scenario,
                source=entry.source.value,
                received_at=received_at,
            )
        )
        await self.session.flush()
