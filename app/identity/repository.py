"""Queries of identities, their keys and the requests to learn them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, CaseKey
from app.domain.identity import CUSTODIAN_ROLES, OPEN_STATUSES, RequestStatus
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from app.staff.models import StaffUser


class IdentityRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    # --- cases and people -------------------------------------------------------------

    async def case(self, case_id: uuid.UUID, *, lock: bool = False) -> Case | None:
        query = select(Case).where(Case.id == case_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def holds_content_key(self, case_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return bool(
            await self.session.scalar(
                select(exists().where(CaseKey.case_id == case_id, CaseKey.staff_user_id == user_id))
            )
        )

    async def staff_user(self, user_id: uuid.UUID | None) -> StaffUser | None:
        return await self.session.get(StaffUser, user_id) if user_id is not None else None

    async def usernames(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        rows = await self.session.execute(select(StaffUser.id, StaffUser.username).where(StaffUser.id.in_(ids)))
        return {user_id: username for user_id, username in rows.all()}

    async def custodians_with_keys(self) -> Sequence[StaffUser]:
        """Who gets a new report's identity key: every active custodian with a key."""
        query = select(StaffUser).where(
            StaffUser.is_identity_custodian.is_(True),
            StaffUser.is_active.is_(True),
            StaffUser.role.in_([role.value for role in CUSTODIAN_ROLES]),
            StaffUser.public_key.is_not(None),
        )
        return (await self.session.scalars(query.order_by(StaffUser.username))).all()

    # --- identities and their keys ------------------------------------------------------

    async def identity(self, case_id: uuid.UUID) -> CaseIdentity | None:
        return await self.session.get(CaseIdentity, case_id)

    async def is_identified(self, case_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(exists().where(CaseIdentity.case_id == case_id))))

    async def holder_key(self, case_id: uuid.UUID, kind: str, staff_user_id: uuid.UUID | None = None) -> IdentityKey | None:
        query = select(IdentityKey).where(IdentityKey.case_id == case_id, IdentityKey.holder_kind == kind)
        if staff_user_id is not None:
            query = query.where(IdentityKey.staff_user_id == staff_user_id)
        return await self.session.scalar(query.limit(1))

    async def staff_keys(self, case_id: uuid.UUID, staff_user_id: uuid.UUID) -> Sequence[IdentityKey]:
        query = select(IdentityKey).where(IdentityKey.case_id == case_id, IdentityKey.staff_user_id == staff_user_id)
        return (await self.session.scalars(query)).all()

    async def key_of_request(self, request_id: uuid.UUID) -> IdentityKey | None:
        return await self.session.scalar(select(IdentityKey).where(IdentityKey.request_id == request_id))

    async def key_for_fingerprint(self, case_id: uuid.UUID, fingerprint: str) -> IdentityKey | None:
        return await self.session.scalar(
            select(IdentityKey).where(IdentityKey.case_id == case_id, IdentityKey.recipient_fingerprint == fingerprint)
        )

    # --- requests -------------------------------------------------------------------------

    async def request(self, request_id: uuid.UUID, *, lock: bool = False) -> IdentityRequest | None:
        query = select(IdentityRequest).where(IdentityRequest.id == request_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def requests_for_case(self, case_id: uuid.UUID) -> Sequence[IdentityRequest]:
        query = select(IdentityRequest).where(IdentityRequest.case_id == case_id)
        return (await self.session.scalars(query.order_by(IdentityRequest.requested_at, IdentityRequest.id))).all()

    async def open_request_of(self, case_id: uuid.UUID, requester_id: uuid.UUID) -> IdentityRequest | None:
        query = select(IdentityRequest).where(
            IdentityRequest.case_id == case_id,
            IdentityRequest.requester_id == requester_id,
            IdentityRequest.status.in_([status.value for status in OPEN_STATUSES]),
        )
        return await self.session.scalar(query)

    async def releasable_by(self, custodian_id: uuid.UUID) -> Sequence[tuple[IdentityRequest, IdentityKey]]:
        """Requests this custodian may release, with the identity key sealed to them."""
        query = (
            select(IdentityRequest, IdentityKey)
            .join(
                IdentityKey,
                (IdentityKey.case_id == IdentityRequest.case_id)
                & (IdentityKey.staff_user_id == custodian_id)
                & (IdentityKey.holder_kind == "custodian"),
            )
            .where(
                IdentityRequest.status.in_([RequestStatus.CONSENTED.value, RequestStatus.APPROVED.value]),
                IdentityRequest.requester_id != custodian_id,
                IdentityRequest.approver_id.is_distinct_from(custodian_id),
            )
            .order_by(IdentityRequest.requested_at, IdentityRequest.id)
        )
        return [(request, key) for request, key in (await self.session.execute(query)).all()]

    async def awaiting_approval(self, supervisor_id: uuid.UUID) -> Sequence[IdentityRequest]:
        query = (
            select(IdentityRequest)
            .where(
                IdentityRequest.status.in_([RequestStatus.PENDING.value, RequestStatus.DECLINED.value]),
                IdentityRequest.requester_id != supervisor_id,
            )
            .order_by(IdentityRequest.requested_at, IdentityRequest.id)
        )
        return (await self.session.scalars(query)).all()

    async def remove(self, row: object) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        await self.session.flush()
