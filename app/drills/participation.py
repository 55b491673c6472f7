"""The participant's side of a drill (anonymous, like intake): open a scenario with a
code, or record that it needs no report. Filing the drill report itself goes through
intake with the code as `X-Drill-Token`.

Nothing here is audited or timed: the code row learns only that it was used and what was
decided, never when. A participant who has something real to report files it without the
code; it is then an ordinary report and nothing on the code's side moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import AppContext, Service
from app.domain.drills import (
    CampaignState,
    Decision,
    DrillTokenRejected,
    SecretKind,
    Window,
    accepts_reports,
    kind_of,
    normalise,
    secret_digest,
)
from app.drills.admission import REFUSED
from app.drills.models import DrillCampaign, DrillParticipantCode


@dataclass(frozen=True)
class OpenedScenario:
    campaign_name: str
    scenario: dict[str, Any]


class ParticipationService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)

    async def _code(self, presented: str, now: datetime) -> tuple[DrillParticipantCode, DrillCampaign]:
        """The code's row and campaign, both locked, or DrillTokenRejected; one answer for
        every reason, so a refusal tells a guesser nothing."""
        canonical = normalise(presented)
        if canonical is None or kind_of(canonical) is not SecretKind.CODE:
            raise DrillTokenRejected(REFUSED)
        digest = secret_digest(self.settings.secret_key_bytes, canonical)
        found = await self.session.get(DrillParticipantCode, digest)
        if found is None:
            raise DrillTokenRejected(REFUSED)
        # Campaign first, then the code: the order intake's claim takes them in too.
        campaign = await self.session.scalar(
            select(DrillCampaign).where(DrillCampaign.id == found.campaign_id).with_for_update(read=True)
        )
        code = await self.session.get(DrillParticipantCode, digest, with_for_update=True, populate_existing=True)
        if code.decision is not None:
            raise DrillTokenRejected(REFUSED)
        window = Window(campaign.starts_at, campaign.ends_at)
        if not accepts_reports(CampaignState(campaign.state), window, now):
            raise DrillTokenRejected(REFUSED)
        return code, campaign

    async def open(self, presented: str, now: datetime) -> OpenedScenario:
        code, campaign = await self._code(presented, now)
        code.used = True
        return OpenedScenario(campaign.name, campaign.scenarios[code.scenario - 1])

    async def decline(self, presented: str, now: datetime) -> None:
        """The participant judged that the scenario needs no report."""
        code, _ = await self._code(presented, now)
        await self.session.execute(
            update(DrillParticipantCode)
            .where(DrillParticipantCode.digest == code.digest)
            .values(used=True, decision=Decision.NO_REPORT.value)
        )
