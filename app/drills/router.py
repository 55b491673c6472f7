"""The drill API: coordinators' campaigns (role drill_coordinator), and the anonymous
participant's scenario and "no report" decision. Injection is intake's
(`app/intake/router.py`), because it runs the intake path itself."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import Now
from app.domain.drill_scorecard import scorecard_csv
from app.domain.drills import CampaignAction, allowed_actions
from app.drills.deps import Coordinator, DrillServiceDep, ParticipationServiceDep
from app.drills.library import library_scenarios
from app.drills.schemas import (
    CampaignIn,
    CampaignList,
    CampaignOut,
    CodeIn,
    CreatedCampaign,
    Decided,
    IssuedCodes,
    LibraryPage,
    ParticipantsIn,
    ParticipantView,
    Scorecard,
)
from app.drills.service import CampaignView
from app.platform.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["drills"])

CSV = "text/csv"


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type`, from the most specific range that
    matches it (RFC 9110 12.5.1); 0 when none does."""
    kind = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.lower().split(","):
        media_range, *parameters = (piece.strip() for piece in part.split(";"))
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(media_range)
        if specificity is None or specificity < best[0]:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = min(1.0, max(0.0, float(value)))
                except ValueError:
                    quality = 0.0
        best = (specificity, quality)
    return best[1]


def prefers_csv(accept: str) -> bool:
    """CSV only when asked for it by name and not liked less than JSON."""
    csv = _quality(accept, CSV) if CSV in accept.lower() else 0.0
    return csv > 0 and csv >= _quality(accept, "application/json")


def campaign_out(view: CampaignView) -> dict:
    campaign = view.campaign
    return {
        "id": campaign.id,
        "name": campaign.name,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "blind": campaign.blind,
        "state": view.state,
        "accepting_reports": view.accepting_reports,
        "allowed_actions": allowed_actions(view.state),
        "version": campaign.version,
        "created_at": campaign.created_at,
        "closed_at": campaign.closed_at,
        "scenarios": campaign.scenarios,
        "codes_issued": campaign.codes_issued,
        "drill_cases": view.drill_cases,
        "purged_cases": campaign.purged_cases,
    }


@router.post(
    "/drills",
    response_model=CreatedCampaign,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 422),
    summary="Create a campaign; the answer holds its injection token, shown only here",
)
async def create_campaign(
    body: CampaignIn, user: Coordinator, service: DrillServiceDep, response: Response, now: Now
) -> CreatedCampaign:
    created = await service.create(user, body, now)
    response.headers["Cache-Control"] = "no-store"
    return CreatedCampaign(**campaign_out(created.view), injection_token=created.injection_token)


@router.get("/drills", response_model=CampaignList, responses=problem_responses(401, 403), summary="Your campaigns, newest first")
async def list_campaigns(user: Coordinator, service: DrillServiceDep, now: Now) -> CampaignList:
    return CampaignList(items=[CampaignOut(**campaign_out(view)) for view in await service.campaigns(user, now)])


@router.get(
    "/drills/scenarios",
    response_model=LibraryPage,
    responses=problem_responses(401, 403),
    summary="The bundled scenario library (Korean and English), to copy into a campaign",
)
async def scenario_library(user: Coordinator) -> LibraryPage:
    return LibraryPage(items=list(library_scenarios()))


@router.get(
    "/drills/{campaign_id}",
    response_model=CampaignOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="One of your campaigns",
)
async def read_campaign(campaign_id: uuid.UUID, user: Coordinator, service: DrillServiceDep, now: Now) -> CampaignOut:
    return CampaignOut(**campaign_out(await service.campaign(user, campaign_id, now)))


def _action_endpoint(action: CampaignAction, summary: str) -> None:
    async def act(campaign_id: uuid.UUID, user: Coordinator, service: DrillServiceDep, now: Now) -> CampaignOut:
        return CampaignOut(**campaign_out(await service.act(user, campaign_id, action, now)))

    act.__name__ = f"{action.value}_campaign"
    router.add_api_route(
        f"/drills/{{campaign_id}}/{action.value}",
        act,
        methods=["POST"],
        response_model=CampaignOut,
        responses=problem_responses(401, 403, 404, 409, 422),
        summary=summary,
    )


_action_endpoint(CampaignAction.PAUSE, "Pause a campaign: its token and codes are refused until it resumes")
_action_endpoint(CampaignAction.RESUME, "Resume a paused campaign")
_action_endpoint(
    CampaignAction.CLOSE,
    "Close a campaign for good: freeze its scorecard, then purge its cases (real cases untouched)",
)


@router.post(
    "/drills/{campaign_id}/participants",
    response_model=IssuedCodes,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Issue single-use participant codes, shown only here",
)
async def issue_codes(
    campaign_id: uuid.UUID, body: ParticipantsIn, user: Coordinator, service: DrillServiceDep, response: Response, now: Now
) -> IssuedCodes:
    codes = await service.issue_codes(user, campaign_id, body.count, body.cohort, now)
    response.headers["Cache-Control"] = "no-store"
    return IssuedCodes(cohort=body.cohort, codes=codes)


@router.get(
    "/drills/{campaign_id}/scorecard",
    responses={
        200: {
            "model": Scorecard,
            "description": "The scorecard: JSON, or CSV with `Accept: text/csv`. Aggregate only.",
            "content": {CSV: {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404, 422),
    },
    summary="How the drill went; frozen at close",
)
async def scorecard(
    campaign_id: uuid.UUID, request: Request, user: Coordinator, service: DrillServiceDep, now: Now
) -> Response:
    card = await service.scorecard(user, campaign_id, now)
    if prefers_csv(request.headers.get("accept", "")):
        return Response(scorecard_csv(card), media_type=f"{CSV}; charset=utf-8")
    return JSONResponse(card)


# --- participants (anonymous) -------------------------------------------------------


@router.post(
    "/participant/scenario",
    response_model=ParticipantView,
    responses=problem_responses(403, 422),
    summary="A participant opens their drill scenario with their code",
)
async def open_scenario(body: CodeIn, service: ParticipationServiceDep, response: Response, now: Now) -> ParticipantView:
    opened = await service.open(body.code, now)
    response.headers["Cache-Control"] = "no-store"
    scenario = opened.scenario
    return ParticipantView(
        campaign=opened.campaign_name,
        scenario={"title": scenario["title"], "brief": scenario["brief"]},
        report_form={"channel": scenario["report"]["channel"], "language": scenario["report"]["language"]},
        real_report_note=(
            "If you have something real to report, file it without this code: it is then an "
            "ordinary report, and nothing links it to the code."
        ),
    )


@router.post(
    "/participant/no-report",
    response_model=Decided,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 422),
    summary="A participant records that their scenario needs no report (uses the code up)",
)
async def decline(body: CodeIn, service: ParticipationServiceDep, now: Now) -> Decided:
    await service.decline(body.code, now)
    return Decided()
