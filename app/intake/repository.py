"""Queries of intake: the installation's receipt salt, shared budgets, challenges and
idempotent retries, and storing a new case. Flushes at most; never commits.

What a case contains (messages, attachments, chunks, sealed keys) is read and written
through `app.cases.repository.CaseContentRepository`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case
from app.domain.staff import Role
from app.intake.models import Installation, IntakeBudget
from app.staff.models import StaffUser


class IntakeRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def receipt_salt(self) -> bytes:
        salt = await self.session.scalar(select(Installation.receipt_salt).where(Installation.id == 1))
        if salt is None:
            raise RuntimeError("the installation row is missing; run `cleanwindow db upgrade`")
        return salt

    async def case_by_idempotency_digest(self, digest: bytes) -> Case | None:
        return await self.session.scalar(select(Case).where(Case.idempotency_digest == digest))

    async def pow_used(self, digest: bytes) -> bool:
        return await self.session.scalar(select(func.count()).where(Case.pow_digest == digest)) > 0

    async def case_by_receipt_tag(self, tag: bytes, scheme: int) -> Case | None:
        return await self.session.scalar(
            select(Case).where(Case.receipt_tag == tag, Case.receipt_scheme == scheme)
        )

    async def case_by_id(self, case_id: uuid.UUID, *, lock: bool = False) -> Case | None:
        return await self.session.get(Case, case_id, with_for_update=lock or None)

    async def triage_recipients(self, usernames: Sequence[str] | None) -> Sequence[StaffUser]:
        query = select(StaffUser).where(
            StaffUser.role == Role.TRIAGE.value,
            StaffUser.is_active.is_(True),
            StaffUser.public_key.is_not(None),
        )
        if usernames is not None:
            query = query.where(StaffUser.username.in_(usernames))
        return (await self.session.scalars(query.order_by(StaffUser.username))).all()

    async def add_case(self, case: Case, keys: Sequence[object]) -> None:
        """The case, then the rows that belong to it (its keys, its sealed identity)."""
        self.session.add(case)
        await self.session.flush()
        self.session.add_all(keys)
        await self.session.flush()

    async def forget_retry_data(self, received_before: date, limit: int) -> int:
        """Clears the idempotent-retry data and challenge digests of up to `limit` cases
        received before `received_before`; returns how many. They are needed only while a
        retry or a challenge can still arrive (at most a day). After that, a stolen
        database plus a client's leaked key must not give a receipt back, and a challenge
        someone logged in transit must not be matched to its case. A case locked by staff
        work is skipped, not waited for: the next run takes it."""
        doomed = (
            select(Case.id)
            .where(
                or_(Case.idempotency_digest.is_not(None), Case.pow_digest.is_not(None)),
                Case.received_on < received_before,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        cleared = await self.session.execute(
            update(Case)
            .where(Case.id.in_(doomed.scalar_subquery()))
            .values(idempotency_digest=None, sealed_replay=None, pow_digest=None)
            .execution_options(synchronize_session=False)
        )
        return cleared.rowcount

    async def budget_used(self, kind: str, window_start: datetime) -> int:
        used = await self.session.scalar(
            select(IntakeBudget.used).where(IntakeBudget.kind == kind, IntakeBudget.window_start == window_start)
        )
        return used or 0

    async def spend_budget(self, kind: str, window_start: datetime) -> int:
        statement = (
            insert(IntakeBudget)
            .values(kind=kind, window_start=window_start, used=1)
            .on_conflict_do_update(
                index_elements=[IntakeBudget.kind, IntakeBudget.window_start],
                set_={"used": IntakeBudget.used + 1},
            )
            .returning(IntakeBudget.used)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def delete_budget_windows_before(self, window_start: datetime) -> int:
        """Deletes the rows of windows that started before `window_start`; returns how many.
        A past window's row says only when people were active: it goes as soon as its
        window has ended (the `cleanup.expired` job)."""
        deleted = await self.session.execute(delete(IntakeBudget).where(IntakeBudget.window_start < window_start))
        return deleted.rowcount

    async def refund_budget(self, kind: str, window_start: datetime) -> None:
        await self.session.execute(
            update(IntakeBudget)
            .where(IntakeBudget.kind == kind, IntakeBudget.window_start == window_start, IntakeBudget.used > 0)
            .values(used=IntakeBudget.used - 1)
        )
        # An emptied row would still say that someone logged in during this window.
        await self.session.execute(
            delete(IntakeBudget).where(
                IntakeBudget.kind == kind, IntakeBudget.window_start == window_start, IntakeBudget.used <= 0
            )
        )
