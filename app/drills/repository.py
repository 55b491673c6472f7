"""Queries of drills: campaigns, codes, the facts a scorecard is built from, the purge.
Flushes at most; never commits.

Drill cases are read here through the case tables (the scorecard's facts come from the
system's own records: the case row, its history, its keys and messages) and deleted here
at close; no other feature's logic is involved.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, CaseKey, CaseMessage, CaseTransition
from app.domain.drills import CampaignState
from app.domain.triage import Action
from app.drills.models import (
    DrillCampaign,
    DrillCampaignTransition,
    DrillCase,
    DrillEffect,
    DrillParticipantCode,
)
from app.staff.models import StaffUser


@dataclass
class DrillCaseRecord:
    """One drill case as its own records tell it."""

    case: Case
    drill: DrillCase
    acknowledged_at: datetime | None = None
    assessment_started_at: datetime | None = None
    assignee_ids: set[uuid.UUID] = field(default_factory=set)
    staff_messages: int = 0
    key_holders: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (user id, role)
    simulated_effects: int = 0


class DrillRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def campaign(self, campaign_id: uuid.UUID, *, lock: bool = False) -> DrillCampaign | None:
        """With `lock`, FOR NO KEY UPDATE: it orders coordinators' steps and drill reports
        (which take the row FOR SHARE, or update its counter), but leaves alone the key
        checks of rows that merely reference the campaign. A plain FOR UPDATE would make a
        close, waiting for a drill case a referral holds, deadlock with that referral
        recording its simulated effect."""
        return await self.session.get(
            DrillCampaign,
            campaign_id,
            with_for_update={"key_share": True} if lock else None,
            populate_existing=lock,
        )

    async def next_open_ended_before(self, ended_before: datetime) -> DrillCampaign | None:
        """A campaign still open whose window ended before `ended_before`, locked as
        `campaign(lock=True)` locks, skipping one another transaction holds (a
        coordinator closing it, or another worker): each is closed by one of them."""
        return await self._next_locked(
            (DrillCampaign.state != CampaignState.CLOSED.value, DrillCampaign.ends_at < ended_before)
        )

    async def next_closed_with_cases(self) -> DrillCampaign | None:
        """A closed campaign that still has drill cases, locked likewise."""
        has_cases = exists().where(Case.drill_campaign_id == DrillCampaign.id, Case.is_drill.is_(True))
        return await self._next_locked((DrillCampaign.state == CampaignState.CLOSED.value, has_cases))

    async def _next_locked(self, conditions: Sequence[ColumnElement[bool]]) -> DrillCampaign | None:
        return await self.session.scalar(
            select(DrillCampaign)
            .where(*conditions)
            .order_by(DrillCampaign.ends_at, DrillCampaign.id)
            .limit(1)
            .with_for_update(key_share=True, skip_locked=True)
            .execution_options(populate_existing=True)
        )

    async def campaigns_of(self, user_id: uuid.UUID) -> Sequence[DrillCampaign]:
        return (
            await self.session.scalars(
                select(DrillCampaign)
                .where(DrillCampaign.created_by_id == user_id)
                .order_by(DrillCampaign.created_at.desc(), DrillCampaign.id)
            )
        ).all()

    async def drill_case_counts(self, campaign_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not campaign_ids:
            return {}
        rows = await self.session.execute(
            select(DrillCase.campaign_id, func.count())
            .where(DrillCase.campaign_id.in_(campaign_ids))
            .group_by(DrillCase.campaign_id)
        )
        return {campaign_id: count for campaign_id, count in rows}

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def add_codes(self, codes: Sequence[DrillParticipantCode]) -> None:
        self.session.add_all(codes)
        await self.session.flush()

    async def transitions(self, campaign_id: uuid.UUID) -> Sequence[DrillCampaignTransition]:
        return (
            await self.session.scalars(
                select(DrillCampaignTransition)
                .where(DrillCampaignTransition.campaign_id == campaign_id)
                .order_by(DrillCampaignTransition.version)
            )
        ).all()

    # --- the scorecard's facts ----------------------------------------------------------

    async def codes(self, campaign_id: uuid.UUID) -> Sequence[DrillParticipantCode]:
        return (
            await self.session.scalars(
                select(DrillParticipantCode).where(DrillParticipantCode.campaign_id == campaign_id)
            )
        ).all()

    async def drill_cases(self, campaign_id: uuid.UUID) -> list[DrillCaseRecord]:
        """Every drill case of the campaign with what its history, messages, keys and
        simulated effects say, in five set-wise queries whatever the number of cases."""
        rows = await self.session.execute(
            select(Case, DrillCase)
            .join(DrillCase, DrillCase.case_id == Case.id)
            .where(DrillCase.campaign_id == campaign_id)
        )
        records = {case.id: DrillCaseRecord(case, drill) for case, drill in rows}
        if not records:
            return []
        of_campaign = select(DrillCase.case_id).where(DrillCase.campaign_id == campaign_id)

        steps = await self.session.execute(
            select(
                CaseTransition.case_id,
                func.min(CaseTransition.occurred_at).filter(CaseTransition.action == Action.ACKNOWLEDGE.value),
                func.min(CaseTransition.occurred_at).filter(
                    CaseTransition.action == Action.START_ASSESSMENT.value
                ),
                func.array_agg(func.distinct(CaseTransition.assignee_id)).filter(
                    CaseTransition.assignee_id.is_not(None)
                ),
            )
            .where(CaseTransition.case_id.in_(of_campaign))
            .group_by(CaseTransition.case_id)
        )
        for case_id, acknowledged_at, assessed_at, assignees in steps:
            record = records[case_id]
            record.acknowledged_at, record.assessment_started_at = acknowledged_at, assessed_at
            record.assignee_ids = set(assignees or ())

        messages = await self.session.execute(
            select(CaseMessage.case_id, func.count())
            .where(CaseMessage.case_id.in_(of_campaign), CaseMessage.author == "staff")
            .group_by(CaseMessage.case_id)
        )
        for case_id, count in messages:
            records[case_id].staff_messages = count

        holders = await self.session.execute(
            select(CaseKey.case_id, StaffUser.id, StaffUser.role)
            .join(StaffUser, StaffUser.id == CaseKey.staff_user_id)
            .where(CaseKey.case_id.in_(of_campaign))
        )
        for case_id, user_id, role in holders:
            records[case_id].key_holders.append((user_id, role))

        effects = await self.session.execute(
            select(DrillEffect.case_id, func.count())
            .where(DrillEffect.campaign_id == campaign_id, DrillEffect.case_id.is_not(None))
            .group_by(DrillEffect.case_id)
        )
        for case_id, count in effects:
            records[case_id].simulated_effects = count
        return list(records.values())

    async def simulated_effects(self, campaign_id: uuid.UUID) -> int:
        return await self.session.scalar(
            select(func.count()).select_from(DrillEffect).where(DrillEffect.campaign_id == campaign_id)
        )

    # --- the purge ----------------------------------------------------------------------

    async def purge_cases(self, campaign_id: uuid.UUID) -> int:
        """Deletes the campaign's cases; their keys, messages, attachments, chunks, history
        and drill rows go with them (ON DELETE CASCADE). Returns how many."""
        result = await self.session.execute(
            delete(Case).where(Case.drill_campaign_id == campaign_id, Case.is_drill.is_(True))
        )
        return result.rowcount or 0
