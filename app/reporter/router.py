"""The reporter's mailbox, authenticated by the receipt."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import Now
from app.domain.identity import ReporterAnswer
from app.platform.multipart import multipart_events
from app.platform.problems import problem_responses
from app.reporter.deps import Reporter, ReporterForUpdate, ReporterServiceDep, ReporterStreaming
from app.reporter.schemas import (
    AttachmentOut,
    IdentityAnswerIn,
    IdentityRequestForReporter,
    MessageCreated,
    MessageIn,
    ReporterReport,
    SessionOut,
    SessionRequest,
)

router = APIRouter(prefix="/api/v1/reporter", tags=["reporter"])

NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/sessions",
    response_model=SessionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 422, 429, 503),
    summary="Open the mailbox with the receipt",
)
async def open_session(body: SessionRequest, service: ReporterServiceDep, response: Response, now: Now) -> SessionOut:
    opened = await service.open_session(body.receipt, now)
    response.headers.update(NO_STORE)
    return SessionOut(token=opened.token, expires_at=opened.expires_at)


@router.get(
    "/report",
    response_model=ReporterReport,
    responses=problem_responses(401),
    summary="The reporter's own report, decrypted, with its public status and the thread",
)
async def read_report(reporter: Reporter, service: ReporterServiceDep, response: Response) -> ReporterReport:
    response.headers.update(NO_STORE)
    return ReporterReport.model_validate(await service.report(reporter))


@router.post(
    "/messages",
    response_model=MessageCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 422),
    summary="Send a message to the staff handling the report",
)
async def send_message(body: MessageIn, reporter: ReporterForUpdate, service: ReporterServiceDep, now: Now) -> MessageCreated:
    message = await service.add_message(reporter, body.body, now)
    return MessageCreated(id=message.id, seq=message.seq, sent_on=message.sent_on)


@router.post(
    "/identity-requests/{request_id}",
    response_model=IdentityRequestForReporter,
    responses=problem_responses(401, 404, 409, 422),
    summary="Consent to, or decline, a request to learn your identity",
)
async def answer_identity_request(
    request_id: uuid.UUID, body: IdentityAnswerIn, reporter: Reporter, service: ReporterServiceDep, response: Response, now: Now
) -> IdentityRequestForReporter:
    response.headers.update(NO_STORE)
    view = await service.answer_identity_request(reporter, request_id, ReporterAnswer(body.answer), now)
    return IdentityRequestForReporter.model_validate(view)


@router.post(
    "/attachments",
    response_model=AttachmentOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 404, 408, 409, 413, 415, 422),
    summary="Attach a file (multipart field `file`); sealed as it streams in",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload_attachment(
    request: Request, reporter: ReporterStreaming, service: ReporterServiceDep, now: Now
) -> AttachmentOut:
    declared = request.headers.get("content-length", "")
    # The body's declared length bounds the file's size (the server reads no more), so the
    # upload reserves no more room than that; a chunked body reserves all the room left.
    info = await service.add_attachment(
        reporter, multipart_events(request), now, at_most_bytes=int(declared) if declared.isdigit() else None
    )
    return AttachmentOut.model_validate(info)


@router.get(
    "/attachments/{attachment_id}",
    responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(401, 404, 409)},
    response_class=StreamingResponse,
    summary="Download one of the report's attachments, decrypted as it streams out",
)
async def download_attachment(
    attachment_id: uuid.UUID, reporter: Reporter, service: ReporterServiceDep
) -> StreamingResponse:
    info, plaintext = await service.attachment(reporter, attachment_id)
    return StreamingResponse(
        plaintext,
        # Served as opaque bytes whatever the file is, so a browser never renders it.
        media_type="application/octet-stream",
        headers={
            **NO_STORE,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.filename)}",
            "Content-Length": str(info.size_bytes),
            "X-Content-Type-Options": "nosniff",
        },
    )
