"""The reporter's side of identity: their own contact, and the requests to learn it.

Used by the reporter's mailbox, inside a receipt session: the identity opens with the
reporter's own key. Nothing here is audited at the moment the reporter acts (an audit
entry carries an exact time, which could be matched to a connection); the staff step that
relies on an answer (a release, an approval, a withdrawal) enters it into the audit chain
with its date.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import crypto
from app.domain.clock import organisation_date
from app.domain.errors import NotFound
from app.domain.identity import (
    ReleaseBasis,
    ReporterAnswer,
    ReporterNotice,
    RequestStatus,
    after_reporter_answer,
    reporter_notice,
)
from app.domain.staff import Role
from app.identity.models import IdentityRequest
from app.identity.repository import IdentityRepository


@dataclass(frozen=True)
class ReporterRequestView:
    id: uuid.UUID
    requested_on: date
    requested_by_role: str
    reason: str
    status: RequestStatus
    your_answer: ReporterAnswer | None
    legal_ground: str | None
    may_answer: bool


class Mailbox:
    def __init__(self, session: AsyncSession, zone: ZoneInfo):
        self.repository = IdentityRepository(session)
        self.zone = zone

    async def own_identity(self, case_id: uuid.UUID, reporter_key: crypto.PrivateKey) -> dict | None:
        """The contact the reporter gave, opened with their own key; None if they gave none."""
        identity = await self.repository.identity(case_id)
        sealed_key = await self.repository.holder_key(case_id, "reporter")
        if identity is None or sealed_key is None:
            return None
        identity_key = crypto.open_identity_key(sealed_key.sealed_key, reporter_key, case_id)
        return crypto.open_identity(identity_key, identity.sealed_identity, case_id)

    async def requests(self, case_id: uuid.UUID) -> list[ReporterRequestView]:
        requests = await self.repository.requests_for_case(case_id)
        roles = {}
        for request in requests:
            requester = await self.repository.staff_user(request.requester_id)
            roles[request.id] = requester.role if requester else Role.INVESTIGATOR.value
        return [self._view(request, roles[request.id]) for request in requests]

    async def answer(self, case_id: uuid.UUID, request_id: uuid.UUID, answer: ReporterAnswer, today: date) -> ReporterRequestView:
        request = await self.repository.request(request_id, lock=True)
        if request is None or request.case_id != case_id:
            raise NotFound("Your report has no identity request with this id.")
        notice = self._notice(request)
        status = after_reporter_answer(notice, RequestStatus(request.status), answer)
        requester = await self.repository.staff_user(request.requester_id)
        role = requester.role if requester else Role.INVESTIGATOR.value
        if request.released_at is not None:
            # Released on a legal ground the reporter is not told of yet: the answer is
            # acknowledged like any other but not stored, so the record (and the answer the
            # audit chain took at release) stays what it was when the identity went out.
            shown = reporter_notice(RequestStatus(request.status), answer, ReleaseBasis(request.basis), True)
            return dataclasses.replace(self._view(request, role), status=shown.status, your_answer=answer)
        request.status = status.value
        request.reporter_answer = answer.value
        request.reporter_answered_on = today
        await self.repository.add()
        return self._view(request, role)

    @staticmethod
    def _notice(request: IdentityRequest) -> ReporterNotice:
        return reporter_notice(
            RequestStatus(request.status),
            ReporterAnswer(request.reporter_answer) if request.reporter_answer else None,
            ReleaseBasis(request.basis) if request.basis else None,
            request.notice_withheld and request.notice_lifted_at is None,
        )

    def _view(self, request: IdentityRequest, requester_role: str) -> ReporterRequestView:
        notice = self._notice(request)
        return ReporterRequestView(
            id=request.id,
            requested_on=organisation_date(request.requested_at, self.zone),
            requested_by_role=requester_role,
            reason=request.reason,
            status=notice.status,
            your_answer=ReporterAnswer(request.reporter_answer) if request.reporter_answer else None,
            legal_ground=request.legal_ground if notice.told_of_legal_decision else None,
            may_answer=notice.status not in (RequestStatus.RELEASED, RequestStatus.WITHDRAWN)
            and not notice.told_of_legal_decision,
        )
