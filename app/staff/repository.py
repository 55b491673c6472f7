"""Queries on staff accounts and tokens. Flushes at most; never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import contains_eager
from sqlalchemy.ext.asyncio import AsyncSession

from app.staff.models import StaffToken, StaffUser


# Every staff request runs it: built once (with bound parameters) rather than per request,
# and the account loaded from the join that filters on it rather than from a second one.
LIVE_TOKEN = (
    select(StaffToken)
    .join(StaffToken.user)
    .options(contains_eager(StaffToken.user))
    .where(
        StaffToken.digest == bindparam("digest"),
        StaffToken.revoked_at.is_(None),
        StaffToken.expires_at > bindparam("now"),
        StaffUser.is_active.is_(True),
    )
)


class StaffRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def user_by_username(self, username: str, *, lock: bool = False) -> StaffUser | None:
        query = select(StaffUser).where(StaffUser.username == username)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def user_by_id(self, user_id: uuid.UUID, *, lock: bool = False) -> StaffUser | None:
        return await self.session.get(StaffUser, user_id, with_for_update=lock or None)

    async def users(self) -> Sequence[StaffUser]:
        return (await self.session.scalars(select(StaffUser).order_by(StaffUser.username))).all()

    async def add(self, entity: StaffUser | StaffToken) -> None:
        self.session.add(entity)
        await self.session.flush()

    async def live_token(self, digest: bytes, now: datetime) -> StaffToken | None:
        return await self.session.scalar(LIVE_TOKEN, {"digest": digest, "now": now})

    async def revoke_tokens_of(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(StaffToken)
            .where(StaffToken.user_id == user_id, StaffToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
