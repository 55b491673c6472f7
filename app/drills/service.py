"""The coordinator's side of drills: campaigns, their life cycle, participant codes, the
scorecard, and the purge at close.

Every step a coordinator takes is written to the campaign's history and the audit chain
in the transaction that takes it. The service takes two steps of its own: the start, when
the window opens, and the close of a campaign left open long after its end (the
`drills.purge` job, `app/drills/housekeeping.py`), audited with no actor. Closing freezes the scorecard first and then deletes the
campaign's cases in that same transaction, so there is never a moment when the numbers
are gone but the cases are not, or the other way round.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog
from app.context import AppContext, Service
from app.domain import drill_scorecard as scoring
from app.domain.audit import AuditAction
from app.domain.clock import organisation_date
from app.domain.drills import (
    CampaignAction,
    CampaignClosed,
    CampaignState,
    Window,
    accepts_reports,
    assign_scenarios,
    catch_up,
    current_state,
    decide,
    new_injection_token,
    new_participant_code,
    normalise,
    secret_digest,
)
from app.domain.errors import InvalidInput, NotFound
from app.domain.staff import Role
from app.drills.library import library_scenario
from app.drills.models import DrillCampaign, DrillCampaignTransition, DrillParticipantCode
from app.drills.repository import DrillCaseRecord, DrillRepository
from app.drills.schemas import CampaignIn, LibraryReference, Scenario
from app.staff.models import StaffUser

# Roles whose holding a drill case's key is part of handling it; anyone else holding it
# (but the investigator assigned to it) means the content went further than needed.
_HANDLING_ROLES = frozenset({Role.TRIAGE.value, Role.SUPERVISOR.value})


@dataclass(frozen=True)
class CampaignView:
    campaign: DrillCampaign
    state: CampaignState
    accepting_reports: bool
    drill_cases: int


@dataclass(frozen=True)
class CreatedCampaign:
    view: CampaignView
    injection_token: str


class DrillService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = DrillRepository(session)
        self.audit = AuditLog(session)

    # --- campaigns ------------------------------------------------------------------

    def _scenarios(self, requested: Sequence[Scenario | LibraryReference]) -> list[dict[str, Any]]:
        scenarios = []
        for number, item in enumerate(requested, start=1):
            library = None
            if isinstance(item, LibraryReference):
                found = library_scenario(item.library)
                if found is None:
                    raise InvalidInput(
                        f"Scenario {number}: no bundled scenario is called {item.library!r}; "
                        "GET /api/v1/drills/scenarios lists them.",
                        field=f"scenarios[{number - 1}].library",
                    )
                library = item.library
                item = Scenario.model_validate({key: found[key] for key in ("title", "brief", "report", "expected")})
            self._check_catalogue(number, item)
            scenarios.append({"number": number, "library": library, **item.model_dump(mode="json", exclude_none=True)})
        return scenarios

    def _check_catalogue(self, number: int, scenario: Scenario) -> None:
        intake = self.settings.intake
        where = f"scenarios[{number - 1}]"
        for field, category in (("report.category", scenario.report.category), ("expected.category", scenario.expected.category)):
            if category is not None and intake.category(category) is None:
                raise InvalidInput(
                    f"Scenario {number}: unknown category; `allowed` lists the codes.",
                    field=f"{where}.{field}",
                    allowed=[option.code for option in intake.categories],
                )
        for field, unit in (("report.org_unit", scenario.report.org_unit), ("expected.org_unit", scenario.expected.org_unit)):
            if unit is not None and intake.org_unit(unit) is None:
                raise InvalidInput(
                    f"Scenario {number}: unknown organisation unit; `allowed` lists the codes.",
                    field=f"{where}.{field}",
                    allowed=[option.code for option in intake.org_units],
                )

    async def create(self, user: StaffUser, request: CampaignIn, now: datetime) -> CreatedCampaign:
        window = Window(request.starts_at, request.ends_at)
        if window.ends_at <= now:
            raise InvalidInput("ends_at has already passed; a drill needs a window still to come.", field="ends_at")
        token = new_injection_token()
        campaign = DrillCampaign(
            id=uuid.uuid4(),
            name=request.name,
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            blind=request.blind,
            state=CampaignState.SCHEDULED.value,
            version=1,
            token_digest=secret_digest(self.settings.secret_key_bytes, token),
            scenarios=self._scenarios(request.scenarios),
            created_by_id=user.id,
            created_at=now,
            codes_issued=0,
            injections=0,
        )
        await self.repository.add(campaign)
        await self._catch_up(campaign, now)
        await self.audit.record(
            AuditAction.DRILL_CREATED,
            now,
            user,
            campaign_id=str(campaign.id),
            blind=campaign.blind,
            scenarios=len(campaign.scenarios),
            starts_at=campaign.starts_at.isoformat(),
            ends_at=campaign.ends_at.isoformat(),
        )
        return CreatedCampaign(await self._view(campaign, now), token)

    async def _own(self, user: StaffUser, campaign_id: uuid.UUID, *, lock: bool = False) -> DrillCampaign:
        campaign = await self.repository.campaign(campaign_id, lock=lock)
        # Another coordinator's campaign is as absent as a missing one: its existence is theirs.
        if campaign is None or campaign.created_by_id != user.id:
            raise NotFound("No such drill campaign among yours.")
        return campaign

    async def _view(self, campaign: DrillCampaign, now: datetime, drill_cases: int | None = None) -> CampaignView:
        if drill_cases is None:
            drill_cases = (await self.repository.drill_case_counts([campaign.id])).get(campaign.id, 0)
        window = Window(campaign.starts_at, campaign.ends_at)
        stored = CampaignState(campaign.state)
        return CampaignView(
            campaign, current_state(stored, window, now), accepts_reports(stored, window, now), drill_cases
        )

    async def campaigns(self, user: StaffUser, now: datetime) -> list[CampaignView]:
        campaigns = await self.repository.campaigns_of(user.id)
        counts = await self.repository.drill_case_counts([campaign.id for campaign in campaigns])
        return [await self._view(campaign, now, counts.get(campaign.id, 0)) for campaign in campaigns]

    async def campaign(self, user: StaffUser, campaign_id: uuid.UUID, now: datetime) -> CampaignView:
        return await self._view(await self._own(user, campaign_id), now)

    # --- the life cycle ---------------------------------------------------------------

    async def _step(
        self, campaign: DrillCampaign, action: CampaignAction, actor: StaffUser | None, now: datetime
    ) -> None:
        source = CampaignState(campaign.state)
        target = decide(source, action)
        campaign.state = target.value
        campaign.version += 1
        if target is CampaignState.CLOSED:
            campaign.closed_at = now
        await self.repository.add(
            DrillCampaignTransition(
                campaign_id=campaign.id,
                version=campaign.version,
                action=action.value,
                from_state=source.value,
                to_state=target.value,
                actor_id=actor.id if actor is not None else None,
                occurred_at=now,
            )
        )

    async def _catch_up(self, campaign: DrillCampaign, now: datetime) -> None:
        """Records the start the clock owes the campaign, if its window has opened."""
        step = catch_up(CampaignState(campaign.state), Window(campaign.starts_at, campaign.ends_at), now)
        if step is not None:
            # The history says when the service noticed; the window says when it began.
            await self._step(campaign, step, None, now)

    async def act(self, user: StaffUser, campaign_id: uuid.UUID, action: CampaignAction, now: datetime) -> CampaignView:
        # The row lock orders this step after any drill report being stored right now
        # (intake holds the same row) and before any that comes later.
        campaign = await self._own(user, campaign_id, lock=True)
        await self._take(campaign, action, user, now)
        return await self._view(campaign, now)

    async def _take(
        self, campaign: DrillCampaign, action: CampaignAction, actor: StaffUser | None, now: datetime
    ) -> None:
        """One step on a locked campaign, by a coordinator or (`actor` None) the service,
        with its history, its purge if it closes, and its audit entries."""
        await self._catch_up(campaign, now)
        source = CampaignState(campaign.state)
        await self._step(campaign, action, actor, now)
        purged = await self._freeze_and_purge(campaign, now) if action is CampaignAction.CLOSE else None
        # The service's own steps say so, besides having no actor.
        automatic = {} if actor is not None else {"automatic": True}
        # Last: the audit head stays locked until the request commits. Taken before the
        # purge, it would deadlock with staff work on a drill case the purge waits for.
        await self.audit.record(
            AuditAction.DRILL_TRANSITION,
            now,
            actor,
            campaign_id=str(campaign.id),
            action=action.value,
            from_state=source.value,
            to_state=campaign.state,
            version=campaign.version,
            **automatic,
        )
        if purged is not None:
            await self.audit.record(
                AuditAction.DRILL_PURGED, now, actor, campaign_id=str(campaign.id), purged_cases=purged, **automatic
            )

    # --- the service's own housekeeping (the `drills.purge` job) -------------------------

    async def close_next_ended(self, ended_before: datetime, now: datetime) -> DrillCampaign | None:
        """Close one campaign whose window ended before `ended_before` and that is still
        open, exactly as its coordinator's close would (scorecard frozen, cases purged,
        audited), by no one: None when no such campaign is left that another transaction
        does not hold."""
        campaign = await self.repository.next_open_ended_before(ended_before)
        if campaign is not None:
            await self._take(campaign, CampaignAction.CLOSE, None, now)
        return campaign

    async def purge_next_leftover(self, now: datetime) -> tuple[DrillCampaign, int] | None:
        """Purge the drill cases still held by one closed campaign (a close purges them
        all, and a closed campaign takes no new one: this is a safety net), audited as a
        purge by no one; None when no closed campaign holds any."""
        campaign = await self.repository.next_closed_with_cases()
        if campaign is None:
            return None
        purged = await self.repository.purge_cases(campaign.id)
        campaign.purged_cases = (campaign.purged_cases or 0) + purged
        await self.session.flush()
        await self.audit.record(
            AuditAction.DRILL_PURGED, now, None, campaign_id=str(campaign.id), purged_cases=purged, automatic=True
        )
        return campaign, purged

    async def _freeze_and_purge(self, campaign: DrillCampaign, now: datetime) -> int:
        campaign.scorecard = await self._compute_scorecard(campaign, now, frozen=True)
        campaign.purged_cases = await self.repository.purge_cases(campaign.id)
        await self.session.flush()
        return campaign.purged_cases

    # --- participant codes ------------------------------------------------------------

    async def issue_codes(
        self, user: StaffUser, campaign_id: uuid.UUID, count: int, cohort: str | None, now: datetime
    ) -> list[str]:
        campaign = await self._own(user, campaign_id, lock=True)
        await self._catch_up(campaign, now)
        if campaign.state == CampaignState.CLOSED.value:
            raise CampaignClosed("A closed campaign takes no new participant codes.")
        codes: list[str] = []
        rows: list[DrillParticipantCode] = []
        secret = self.settings.secret_key_bytes
        for scenario in assign_scenarios(campaign.codes_issued, count, len(campaign.scenarios)):
            code = new_participant_code()
            codes.append(code)
            rows.append(
                DrillParticipantCode(
                    digest=secret_digest(secret, normalise(code)),
                    campaign_id=campaign.id,
                    cohort=cohort,
                    scenario=scenario,
                    used=False,
                )
            )
        await self.repository.add_codes(rows)
        campaign.codes_issued += count
        await self.audit.record(
            AuditAction.DRILL_CODES_ISSUED, now, user, campaign_id=str(campaign.id), count=count, cohort=cohort
        )
        return codes

    # --- the scorecard ----------------------------------------------------------------

    async def scorecard(self, user: StaffUser, campaign_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        campaign = await self._own(user, campaign_id)
        if campaign.scorecard is not None:
            return campaign.scorecard
        return await self._compute_scorecard(campaign, now, frozen=False)

    async def _compute_scorecard(self, campaign: DrillCampaign, now: datetime, *, frozen: bool) -> dict[str, Any]:
        today = organisation_date(now, self.settings.zone)
        records = await self.repository.drill_cases(campaign.id)
        codes = await self.repository.codes(campaign.id)
        expected = {
            scenario["number"]: scoring.Expected(
                report=scenario["expected"]["report"],
                category=scenario["expected"].get("category"),
                org_unit=scenario["expected"].get("org_unit"),
            )
            for scenario in campaign.scenarios
        }
        return scoring.build_scorecard(
            campaign={
                "id": str(campaign.id),
                "name": campaign.name,
                "state": current_state(
                    CampaignState(campaign.state), Window(campaign.starts_at, campaign.ends_at), now
                ).value,
                "blind": campaign.blind,
            },
            cases=[_case_facts(record, today) for record in records],
            codes=[
                scoring.CodeFacts(
                    cohort=code.cohort,
                    scenario=code.scenario,
                    used=code.used,
                    decision=scoring.Decision(code.decision) if code.decision else None,
                )
                for code in codes
            ],
            expected=expected,
            cohort_threshold=self.settings.drills.cohort_threshold,
            computed_at=now,
            frozen=frozen,
        )


def _case_facts(record: DrillCaseRecord, today: date) -> scoring.CaseFacts:
    case, drill = record.case, record.drill
    confidential = all(
        role in _HANDLING_ROLES or user_id in record.assignee_ids for user_id, role in record.key_holders
    )
    return scoring.CaseFacts(
        order_key=str(case.id),
        source=scoring.Source(drill.source),
        scenario=drill.scenario,
        state=case.state,
        received_at=drill.received_at,
        acknowledged_at=record.acknowledged_at,
        assessment_started_at=record.assessment_started_at,
        category=case.category,
        org_unit=case.org_unit,
        acknowledgement=scoring.deadline_outcome(case.acknowledged_on, case.acknowledge_due_on, today),
        feedback=scoring.deadline_outcome(case.feedback_given_on, case.feedback_due_on, today),
        reporter_answered=record.staff_messages > 0,
        confidentiality_kept=confidential,
        simulated_effects=record.simulated_effects,
    )

