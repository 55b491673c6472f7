"""Anonymous intake. Nothing here reads the caller's address or headers beyond the two
the contract names."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status

from app.api.deps import Now, SettingsDep, require_roles
from app.domain.attachments import FILE_TYPES
from app.domain.intake import CHANNEL_LABELS, Language
from app.domain.staff import Role
from app.intake.deps import IntakeServiceDep
from app.intake.schemas import (
    AttachmentLimits,
    ChallengeOut,
    Injected,
    InjectIn,
    IntakeForm,
    OptionOut,
    ProofOfWorkSettings,
    ReportSubmission,
    SubmittedReport,
)
from app.platform.problems import problem_responses
from app.staff.models import StaffUser

router = APIRouter(prefix="/api/v1", tags=["intake"])


@router.get("/intake/form", response_model=IntakeForm, summary="What a report form needs to offer")
async def intake_form(settings: SettingsDep, service: IntakeServiceDep, now: Now) -> IntakeForm:
    intake = settings.intake
    difficulty = await service.current_difficulty(now)
    return IntakeForm(
        channels=[OptionOut(code=channel.value, labels=labels) for channel, labels in CHANNEL_LABELS.items()],
        categories=[OptionOut(code=o.code, labels={"ko": o.ko, "en": o.en}) for o in intake.categories],
        org_units=[OptionOut(code=o.code, labels={"ko": o.ko, "en": o.en}) for o in intake.org_units],
        languages=[language.value for language in Language],
        proof_of_work=ProofOfWorkSettings(
            enabled=settings.pow_difficulty > 0,
            difficulty=difficulty,
            challenge_ttl_seconds=intake.challenge_ttl_seconds,
        ),
        attachments=AttachmentLimits(
            max_bytes=intake.attachments.max_bytes,
            max_per_report=intake.attachments.max_per_case,
            max_total_bytes_per_report=intake.attachments.max_total_bytes_per_case,
            allowed_types=sorted(FILE_TYPES),
        ),
    )


@router.post(
    "/intake/challenges",
    response_model=ChallengeOut,
    status_code=status.HTTP_201_CREATED,
    summary="A single-use proof-of-work challenge for one submission",
)
async def new_challenge(service: IntakeServiceDep, now: Now) -> ChallengeOut:
    issued = await service.issue_challenge(now)
    return ChallengeOut(challenge=issued.challenge, difficulty=issued.difficulty, expires_at=issued.expires_at)


@router.post(
    "/reports",
    response_model=SubmittedReport,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 403, 409, 413, 422, 503),
    summary="Submit a report anonymously; the answer holds the receipt, shown only here",
)
async def submit_report(
    submission: ReportSubmission,
    service: IntakeServiceDep,
    response: Response,
    now: Now,
    idempotency_key: Annotated[
        str | None,
        Header(description="A random string (a UUID) chosen by the client: a retry with the "
               "same key returns the same receipt and creates no second report."),
    ] = None,
    x_drill_token: Annotated[
        str | None,
        Header(description="A drill campaign's injection token or a participant code: the report "
               "becomes a drill case of that campaign. An invalid one is refused (403), never "
               "taken as a real report."),
    ] = None,
) -> SubmittedReport:
    submitted = await service.submit(
        submission, idempotency_key=idempotency_key, drill_token=x_drill_token, now=now
    )
    response.headers["Cache-Control"] = "no-store"
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return SubmittedReport(receipt=submitted.receipt, received_on=submitted.received_on)


@router.post(
    "/drills/{campaign_id}/inject",
    response_model=Injected,
    status_code=status.HTTP_201_CREATED,
    tags=["drills"],
    responses=problem_responses(401, 403, 404, 422, 503),
    summary="Run a scenario through the intake path as a drill report; the answer holds its receipt",
)
async def inject(
    campaign_id: uuid.UUID,
    body: InjectIn,
    service: IntakeServiceDep,
    coordinator: Annotated[StaffUser, Depends(require_roles(Role.DRILL_COORDINATOR))],
    response: Response,
    now: Now,
) -> Injected:
    injected = await service.inject(campaign_id, coordinator.id, body.scenario, now)
    response.headers["Cache-Control"] = "no-store"
    return Injected(receipt=injected.receipt, received_on=injected.received_on, scenario=injected.scenario)
