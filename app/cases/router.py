"""The staff case API: thin translations between HTTP and `CaseService`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentStaff, Now
from app.cases.deps import CaseServiceDep
from app.cases.models import Case
from app.cases.repository import CaseFilters
from app.cases.schemas import (
    CaseDetail,
    CasePage,
    CaseSummary,
    GrantIn,
    GrantOut,
    History,
    StaffMessageIn,
    StaffMessageOut,
    Stats,
    TransitionIn,
    TransitionOut,
)
from app.cases.service import CaseView
from app.domain.crypto import public_key_text
from app.domain.intake import Channel
from app.domain.triage import CaseState, Request
from app.platform.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["cases"])

ATTACHMENT_MEDIA_TYPE = "application/vnd.cleanwindow.sealed-chunks"


# The summary's fields a case row carries, found once rather than per case and field.
_CASE_FIELDS = tuple(name for name in CaseSummary.model_fields if hasattr(Case, name) and name != "is_drill")


def summary(view: CaseView) -> dict:
    case = view.case
    return {
        **{name: getattr(case, name) for name in _CASE_FIELDS},
        # A blind drill's cases look real to staff until the campaign closes (and purges them).
        "is_drill": case.shown_as_drill,
        "assignee": view.assignee,
        "overdue": view.overdue,
    }


@router.get(
    "/cases",
    response_model=CasePage,
    responses=problem_responses(401, 403, 422),
    summary="The case queue, oldest first, with keyset pagination",
)
async def list_cases(
    user: CurrentStaff,
    service: CaseServiceDep,
    now: Now,
    state: CaseState | None = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    channel: Channel | None = None,
    overdue: bool | None = None,
    assignee: Annotated[str | None, Query(max_length=64, description="A username, or `me`.")] = None,
    drill: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> dict:
    service.require_case_role(user)  # before the assignee lookup below
    assignee_id = await service.assignee_id(assignee, user) if assignee else None
    if assignee and assignee_id is None:
        return CasePage(items=[], next_cursor=None)  # no account has this name
    filters = CaseFilters(
        state=state,
        category=category,
        channel=channel.value if channel else None,
        overdue=overdue,
        assignee_id=assignee_id,
        drill=drill,
    )
    page = await service.queue(user, filters, cursor, limit, now)
    # Plain dicts: the response model validates them once (a CaseSummary built here would
    # be validated twice).
    return {"items": [summary(view) for view in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/cases/{case_id}",
    response_model=CaseDetail,
    responses=problem_responses(401, 403, 404),
    summary="A case: metadata, deadlines, version, and its content sealed (never plaintext); after retention, the metadata only",
)
async def show_case(case_id: uuid.UUID, user: CurrentStaff, service: CaseServiceDep, now: Now) -> dict:
    view = await service.detail(user, case_id, now)
    case = view.case
    # Plain dicts, here and below: the response model validates them once (models built
    # here would be validated twice).
    return {
        **summary(view),
        "allowed_actions": view.allowed_actions,
        # Checked when the report was stored; not parsed again to be shown.
        "reporter_public_key": public_key_text(case.reporter_public_key) if case.reporter_public_key else None,
        "identified": view.identified,
        "identity_released_to_you": view.identity_released_to_you,
        "sealed_report": case.sealed_report,
        "content_key": {"fingerprint": view.content_key.recipient_fingerprint, "sealed_key": view.content_key.sealed_key}
        if view.content_key
        else None,
        "messages": [
            {
                "id": message.id,
                "seq": message.seq,
                "author": message.author,
                "staff_username": author,
                "sent_on": message.sent_on,
                "sent_at": message.sent_at,
                "sealed_body": message.sealed_body,
                "seal_format": message.seal_format,
            }
            for message, author in view.messages
        ],
        "attachments": [
            {
                "id": attachment.id,
                "author": attachment.author,
                "uploaded_on": attachment.uploaded_on,
                "chunk_count": attachment.chunk_count,
                "chunk_bytes": attachment.chunk_bytes,
                "stored_bytes": attachment.stored_bytes,
                "sealed_meta": attachment.sealed_meta,
            }
            for attachment in view.attachments
        ],
    }


@router.get(
    "/cases/{case_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {ATTACHMENT_MEDIA_TYPE: {}}}, **problem_responses(401, 403, 404)},
    summary="An attachment's sealed chunks, each prefixed by its length (4 bytes, big-endian)",
)
async def attachment(
    case_id: uuid.UUID, attachment_id: uuid.UUID, user: CurrentStaff, service: CaseServiceDep, now: Now
) -> StreamingResponse:
    found, chunks = await service.attachment_chunks(user, case_id, attachment_id, now)
    return StreamingResponse(
        chunks,
        media_type=ATTACHMENT_MEDIA_TYPE,
        headers={"X-Chunk-Count": str(found.chunk_count), "Cache-Control": "no-store"},
    )


@router.post(
    "/cases/{case_id}/transitions",
    response_model=TransitionOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Move a case through the state machine",
)
async def transition(
    case_id: uuid.UUID, body: TransitionIn, user: CurrentStaff, service: CaseServiceDep, now: Now
) -> dict:
    request = Request(
        action=body.action,
        expected_version=body.expected_version,
        reason=body.reason,
        resolution=body.resolution,
        assignee=body.assignee,
    )
    view = await service.transition(user, case_id, request, now)
    return {**summary(view), "allowed_actions": service.allowed_for(user, view.case)}


@router.get(
    "/cases/{case_id}/history",
    response_model=History,
    responses=problem_responses(401, 403, 404),
    summary="Every transition of the case: who, when, from, to, why",
)
async def history(case_id: uuid.UUID, user: CurrentStaff, service: CaseServiceDep) -> dict:
    rows = await service.history(user, case_id)
    return {
        "items": [
            {
                "version": step.version,
                "action": step.action,
                "from_state": step.from_state,
                "to_state": step.to_state,
                "actor": actor,
                "actor_role": actor_role,
                "occurred_at": step.occurred_at,
                "reason": step.reason,
                "resolution": step.resolution,
                "assignee": assignee,
            }
            for step, actor, actor_role, assignee in rows
        ]
    }


@router.post(
    "/cases/{case_id}/messages",
    response_model=StaffMessageOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="A message to the reporter, sealed by the client under the case's content key",
)
async def send_message(
    case_id: uuid.UUID, body: StaffMessageIn, user: CurrentStaff, service: CaseServiceDep, now: Now
) -> dict:
    message = await service.add_message(user, case_id, body.id, body.sealed_body, now)
    return {"id": message.id, "seq": message.seq, "sent_on": message.sent_on, "sent_at": message.sent_at}


@router.post(
    "/cases/{case_id}/grants",
    response_model=GrantOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Give a colleague the content key, re-sealed by the client to their public key",
)
async def grant(case_id: uuid.UUID, body: GrantIn, user: CurrentStaff, service: CaseServiceDep, now: Now) -> dict:
    grantee, key = await service.grant(user, case_id, body.grantee, body.fingerprint, body.sealed_key, now)
    return {"grantee": grantee.username, "fingerprint": key.recipient_fingerprint, "granted_at": key.granted_at}


@router.get(
    "/stats",
    response_model=Stats,
    responses=problem_responses(401, 403),
    summary="Counts by state and category and deadline compliance, over real cases only (never drills)",
)
async def stats(user: CurrentStaff, service: CaseServiceDep, now: Now) -> Stats:
    return Stats(**await service.stats(user, now))
