"""The staff side of identity: asking for it, approving on a legal ground, releasing it,
and reading a released one.

The server never holds an identity key in the clear. A custodian's client opens the key
sealed to the custodian and re-seals it to the requester's registered public key; the
server checks who may do what (`app.domain.identity`), stores the sealed key, and writes
each step to the audit chain in the transaction that takes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog
from app.cases.models import Case
from app.context import AppContext, Service
from app.domain import crypto
from app.domain.audit import AuditAction
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.retention import refuse_if_purged
from app.domain.identity import (
    CUSTODIAN_ROLES,
    IdentityConflict,
    ReleaseBasis,
    ReporterAnswer,
    RequestStatus,
    check_approval,
    check_release,
    check_unopenable,
    check_withdrawal,
)
from app.domain.staff import Role
from app.domain.triage import CASE_ROLES, may_see_case
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from app.identity.repository import IdentityRepository
from app.staff.models import StaffUser


class NoIdentity(Conflict):
    slug = "no-identity"
    title = "This case has no identity sealed apart"


class IdentityNotReleased(Forbidden):
    slug = "identity-not-released"
    title = "No identity of this case was released to you"


@dataclass(frozen=True)
class RequestView:
    request: IdentityRequest
    usernames: dict[uuid.UUID, str]
    # False for a custodian who may not see the case: they are not shown why the approver
    # kept the reporter from being told (that is about the investigation, not the release).
    case_visible: bool = True


@dataclass(frozen=True)
class Releasable:
    """A request this custodian may release, and to whom."""

    view: RequestView
    requester_username: str
    requester_public_key: bytes
    requester_fingerprint: str


@dataclass(frozen=True)
class ReleaseMaterial(Releasable):
    """What a custodian's client needs to release one request: the identity key sealed to
    the custodian and the sealed identity (to check the key opens it). Handed out one
    request at a time, and audited: a custodian can open what they fetch."""

    custodian_key: IdentityKey
    sealed_identity: bytes


@dataclass(frozen=True)
class Pending:
    to_release: list[Releasable]
    to_approve: list[RequestView]


@dataclass(frozen=True)
class ReleasedIdentity:
    case_id: uuid.UUID
    request_id: uuid.UUID
    sealed_identity: bytes
    sealed_key: IdentityKey


class IdentityService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = IdentityRepository(session)
        self.audit = AuditLog(session)

    # --- access ---------------------------------------------------------------------------

    async def _visible_case(self, user: StaffUser, case_id: uuid.UUID, *, lock: bool = False) -> Case:
        if user.role_enum not in CASE_ROLES:
            raise NotFound("No case with this id is open to you.")
        case = await self.repository.case(case_id, lock=lock)
        if case is None or not may_see_case(user.role_enum, case.assignee_id == user.id):
            raise NotFound("No case with this id is open to you.")
        return case

    async def _visible_request(self, user: StaffUser, request_id: uuid.UUID, *, lock: bool = False) -> IdentityRequest:
        """A request is open to whoever may see its case, and to every custodian (who need
        not read cases: a custodian without this case's key is then told why they cannot
        release it). Others get "not found". With `lock`, the case row is locked before the
        request's, the order a drill's purge takes them in (case, then its requests)."""
        request = await self.repository.request(request_id)
        if request is not None:
            case = await self.repository.case(request.case_id, lock=lock)
            if case is not None and (self._sees_case(user, case) or self._is_custodian(user)):
                if lock:
                    request = await self.repository.request(request_id, lock=True)
                if request is not None:
                    return request
        raise NotFound("No identity request with this id is open to you.")

    @staticmethod
    def _sees_case(user: StaffUser, case: Case) -> bool:
        return user.role_enum in CASE_ROLES and may_see_case(user.role_enum, case.assignee_id == user.id)

    @staticmethod
    def _is_custodian(user: StaffUser) -> bool:
        return user.is_identity_custodian and user.role_enum in CUSTODIAN_ROLES

    async def view(self, request: IdentityRequest, user: StaffUser | None = None) -> RequestView:
        case_visible = True
        if user is not None:
            case = await self.repository.case(request.case_id)
            case_visible = case is not None and self._sees_case(user, case)
        ids = {
            request.requester_id,
            request.approver_id,
            request.custodian_id,
            request.withdrawn_by_id,
            request.notice_lifted_by_id,
        }
        usernames = await self.repository.usernames({id_ for id_ in ids if id_ is not None})
        return RequestView(request, usernames, case_visible)

    # --- asking ---------------------------------------------------------------------------

    async def request(self, user: StaffUser, case_id: uuid.UUID, reason: str, now: datetime) -> RequestView:
        case = await self._visible_case(user, case_id, lock=True)
        refuse_if_purged(case.purged_on, "This case's identity cannot be requested")
        if not await self.repository.holds_content_key(case.id, user.id):
            raise Conflict(
                "You hold no key to this case, so you cannot have read it; ask for a grant first, "
                "then ask for the identity.",
            )
        if not await self.repository.is_identified(case.id):
            raise NoIdentity(
                "The reporter of this case gave no contact details sealed apart (an anonymous report, "
                "or one received before identities had their own key); there is no identity to request."
            )
        if user.public_key_fingerprint is None:
            raise InvalidInput("Register a public key first: a released identity is sealed to it.")
        if await self.repository.staff_keys(case.id, user.id):
            raise Conflict("You already hold this case's identity key.")
        if await self.repository.open_request_of(case.id, user.id) is not None:
            raise Conflict("You already have an open request for this case's identity.")
        request = IdentityRequest(
            id=uuid.uuid4(),
            case_id=case.id,
            status=RequestStatus.PENDING.value,
            requester_id=user.id,
            requested_at=now,
            reason=reason,
        )
        try:
            async with self.session.begin_nested():
                await self.repository.add(request)
        except IntegrityError:  # the same person asking twice at the same moment
            raise Conflict("You already have an open request for this case's identity.") from None
        await self._record(AuditAction.IDENTITY_REQUESTED, request, user, now, reason=reason)
        return await self.view(request, user)

    async def requests_for_case(self, user: StaffUser, case_id: uuid.UUID) -> list[RequestView]:
        case = await self._visible_case(user, case_id)
        return [await self.view(request) for request in await self.repository.requests_for_case(case.id)]

    async def get(self, user: StaffUser, request_id: uuid.UUID) -> RequestView:
        return await self.view(await self._visible_request(user, request_id), user)

    # --- deciding -------------------------------------------------------------------------

    async def approve(
        self, user: StaffUser, request_id: uuid.UUID, legal_ground: str, withheld_reason: str | None, now: datetime
    ) -> RequestView:
        request = await self._visible_request(user, request_id, lock=True)
        check_approval(RequestStatus(request.status), user.role_enum, user.id, request.requester_id)
        request.status = RequestStatus.APPROVED.value
        request.approver_id = user.id
        request.approved_at = now
        request.legal_ground = legal_ground
        request.notice_withheld = withheld_reason is not None
        request.withheld_reason = withheld_reason
        await self.repository.add()
        await self._record(
            AuditAction.IDENTITY_APPROVED,
            request,
            user,
            now,
            legal_ground=legal_ground,
            notice_withheld=request.notice_withheld,
            withheld_reason=withheld_reason,
            **self._reporter_answer(request),
        )
        return await self.view(request, user)

    async def release_material(self, user: StaffUser, request_id: uuid.UUID, now: datetime) -> ReleaseMaterial:
        """The identity key sealed to this custodian, for one request they may release now."""
        request = await self._visible_request(user, request_id)
        check_release(
            RequestStatus(request.status),
            user.id,
            is_custodian=self._is_custodian(user),
            requester_id=request.requester_id,
            approver_id=request.approver_id,
        )
        key = await self._custodian_key(request, user)
        requester = await self.repository.staff_user(request.requester_id)
        identity = await self.repository.identity(request.case_id)
        if identity is None:  # gone with its case's content (retention)
            raise NotFound("This request's case no longer holds an identity.")
        assert requester is not None
        if requester.public_key is None or requester.public_key_fingerprint is None:
            raise Conflict(f"`{requester.username}` has no registered key to seal the identity to.")
        await self._record(AuditAction.IDENTITY_KEY_FETCHED, request, user, now)
        return ReleaseMaterial(
            view=await self.view(request, user),
            requester_username=requester.username,
            requester_public_key=requester.public_key,
            requester_fingerprint=requester.public_key_fingerprint,
            custodian_key=key,
            sealed_identity=identity.sealed_identity,
        )

    async def _custodian_key(self, request: IdentityRequest, user: StaffUser) -> IdentityKey:
        key = await self.repository.holder_key(request.case_id, "custodian", user.id)
        if key is None:
            raise Conflict(
                "This case's identity key was not sealed to you (you became a custodian, or registered "
                "your key, after the report arrived); another custodian must release it."
            )
        return key

    async def release(
        self, user: StaffUser, request_id: uuid.UUID, fingerprint: str, sealed_key: bytes, now: datetime
    ) -> RequestView:
        request = await self._visible_request(user, request_id, lock=True)
        basis = check_release(
            RequestStatus(request.status),
            user.id,
            is_custodian=self._is_custodian(user),
            requester_id=request.requester_id,
            approver_id=request.approver_id,
        )
        await self._custodian_key(request, user)
        requester = await self.repository.staff_user(request.requester_id)
        case = await self.repository.case(request.case_id)
        assert requester is not None and case is not None
        if not requester.is_active or not may_see_case(requester.role_enum, case.assignee_id == requester.id):
            raise Conflict(
                f"`{requester.username}` may no longer read this case; the request should be withdrawn."
            )
        if requester.public_key_fingerprint != fingerprint:
            raise Conflict(
                f"`{requester.username}`'s key is {requester.public_key_fingerprint}, not {fingerprint}; "
                "fetch the request again and re-seal.",
                current_fingerprint=requester.public_key_fingerprint,
            )
        if len(sealed_key) != crypto.SEALED_IDENTITY_KEY_BYTES:
            raise InvalidInput(
                f"A sealed identity key is {crypto.SEALED_IDENTITY_KEY_BYTES} bytes; this one is {len(sealed_key)}.",
                field="sealed_key",
            )
        if await self.repository.key_for_fingerprint(case.id, fingerprint) is not None:
            raise Conflict(f"`{requester.username}`'s key already holds this case's identity key.")
        request.status = RequestStatus.RELEASED.value
        request.custodian_id = user.id
        request.released_at = now
        request.basis = basis.value
        await self.repository.add(
            IdentityKey(
                case_id=case.id,
                holder_kind="requester",
                staff_user_id=requester.id,
                recipient_fingerprint=fingerprint,
                sealed_key=sealed_key,
                request_id=request.id,
            )
        )
        approver = await self.repository.staff_user(request.approver_id)
        await self._record(
            AuditAction.IDENTITY_RELEASED,
            request,
            user,
            now,
            basis=basis.value,
            requester=requester.username,
            fingerprint=fingerprint,
            approver=approver.username if approver else None,
            **self._reporter_answer(request),
        )
        return await self.view(request, user)

    async def report_unopenable(self, user: StaffUser, request_id: uuid.UUID, now: datetime) -> RequestView:
        """The requester's client could not open what was released: back to releasable."""
        request = await self._visible_request(user, request_id, lock=True)
        basis = ReleaseBasis(request.basis) if request.basis else None
        status = check_unopenable(RequestStatus(request.status), user.id, request.requester_id, basis)
        custodian = (await self.repository.staff_user(request.custodian_id)) if request.custodian_id else None
        key = await self.repository.key_of_request(request.id)
        if key is not None:
            await self.repository.remove(key)
        request.status = status.value
        request.custodian_id = None
        request.released_at = None
        request.basis = None
        await self.repository.add()
        custodian_name = custodian.username if custodian else None
        await self._record(AuditAction.IDENTITY_RELEASE_UNOPENABLE, request, user, now, custodian=custodian_name)
        return await self.view(request, user)

    async def withdraw(self, user: StaffUser, request_id: uuid.UUID, now: datetime) -> RequestView:
        request = await self._visible_request(user, request_id, lock=True)
        check_withdrawal(RequestStatus(request.status), user.role_enum, user.id, request.requester_id)
        request.status = RequestStatus.WITHDRAWN.value
        request.withdrawn_by_id = user.id
        request.withdrawn_at = now
        await self.repository.add()
        await self._record(AuditAction.IDENTITY_WITHDRAWN, request, user, now, **self._reporter_answer(request))
        return await self.view(request, user)

    async def lift_withholding(self, user: StaffUser, request_id: uuid.UUID, now: datetime) -> RequestView:
        request = await self._visible_request(user, request_id, lock=True)
        if user.role_enum is not Role.SUPERVISOR:
            raise Forbidden("Only a supervisor may let the reporter be told.")
        if not request.notice_withheld or request.notice_lifted_at is not None:
            raise IdentityConflict("The reporter is not being kept from this decision; there is nothing to lift.")
        request.notice_lifted_by_id = user.id
        request.notice_lifted_at = now
        await self.repository.add()
        await self._record(AuditAction.IDENTITY_NOTICE_LIFTED, request, user, now)
        return await self.view(request, user)

    async def _record(
        self, action: AuditAction, request: IdentityRequest, user: StaffUser, now: datetime, **details: object
    ) -> None:
        """An identity step in the audit chain, named by its case and request."""
        await self.audit.record(action, now, user, case_id=request.case_id, request_id=str(request.id), **details)

    @staticmethod
    def _reporter_answer(request: IdentityRequest) -> dict[str, str | None]:
        """The reporter's answer, entered into the chain by the staff step relying on it."""
        return {
            "reporter_answer": ReporterAnswer(request.reporter_answer).value if request.reporter_answer else None,
            "reporter_answered_on": request.reporter_answered_on.isoformat() if request.reporter_answered_on else None,
        }

    # --- work waiting ----------------------------------------------------------------------

    async def pending(self, user: StaffUser) -> Pending:
        """Requests waiting for this caller: to release (a custodian), to weigh (a supervisor).
        No key material: `release_material` hands it out one request at a time."""
        to_release: list[Releasable] = []
        if self._is_custodian(user):
            for request, _ in await self.repository.releasable_by(user.id):
                requester = await self.repository.staff_user(request.requester_id)
                if requester is None or requester.public_key is None or requester.public_key_fingerprint is None:
                    continue
                to_release.append(
                    Releasable(
                        view=await self.view(request, user),
                        requester_username=requester.username,
                        requester_public_key=requester.public_key,
                        requester_fingerprint=requester.public_key_fingerprint,
                    )
                )
        to_approve: list[RequestView] = []
        if user.role_enum is Role.SUPERVISOR:
            to_approve = [await self.view(request, user) for request in await self.repository.awaiting_approval(user.id)]
        return Pending(to_release, to_approve)

    # --- reading a released identity ---------------------------------------------------------

    async def released_identity(self, user: StaffUser, case_id: uuid.UUID, now: datetime) -> ReleasedIdentity:
        case = await self._visible_case(user, case_id)
        refuse_if_purged(case.purged_on, "This case's identity cannot be read")
        keys: Sequence[IdentityKey] = [
            key for key in await self.repository.staff_keys(case.id, user.id) if key.holder_kind == "requester"
        ]
        identity: CaseIdentity | None = await self.repository.identity(case.id)
        if not keys or identity is None:
            raise IdentityNotReleased(
                "No identity of this case was released to you; `POST /api/v1/cases/{id}/identity-requests` asks for it."
            )
        key = next((key for key in keys if key.recipient_fingerprint == user.public_key_fingerprint), keys[-1])
        assert key.request_id is not None
        await self.audit.record(
            AuditAction.IDENTITY_READ, now, user, case_id=case.id, request_id=str(key.request_id)
        )
        return ReleasedIdentity(case.id, key.request_id, identity.sealed_identity, key)
