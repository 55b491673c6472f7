"""Queries behind intake and the reporter's mailbox. Flushes at most; never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import BigInteger, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage
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

    async def add_case(self, case: Case, keys: Sequence[CaseKey]) -> None:
        self.session.add(case)
        await self.session.flush()
        self.session.add_all(keys)
        await self.session.flush()

    async def forget_retry_data(self, received_before: date) -> None:
        """Idempotent-retry data and challenge digests are needed only while a retry or a
        challenge can still arrive (at most a day). After that, a stolen database plus a
        client's leaked key must not give a receipt back, and a challenge someone logged
        in transit must not be matched to its case."""
        for column, extra in ((Case.idempotency_digest, {"sealed_replay": None}), (Case.pow_digest, {})):
            await self.session.execute(
                update(Case)
                .where(column.is_not(None), Case.received_on < received_before)
                .values({column.key: None, **extra})
            )

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
        used = (await self.session.execute(statement)).scalar_one()
        if used == 1:  # the first of a new window clears the old ones away
            await self.session.execute(
                delete(IntakeBudget).where(IntakeBudget.kind == kind, IntakeBudget.window_start < window_start)
            )
        return used

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

    async def reporter_key(self, case_id: uuid.UUID) -> CaseKey | None:
        return await self.session.scalar(
            select(CaseKey).where(CaseKey.case_id == case_id, CaseKey.recipient_kind == "reporter")
        )

    async def messages(self, case_id: uuid.UUID) -> Sequence[CaseMessage]:
        return (
            await self.session.scalars(
                select(CaseMessage).where(CaseMessage.case_id == case_id).order_by(CaseMessage.seq)
            )
        ).all()

    async def next_message_seq(self, case_id: uuid.UUID) -> int:
        """Call with the case row locked, so two messages cannot take the same number."""
        last = await self.session.scalar(
            select(func.max(CaseMessage.seq)).where(CaseMessage.case_id == case_id)
        )
        return (last or 0) + 1

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def attachments(self, case_id: uuid.UUID) -> Sequence[CaseAttachment]:
        return (
            await self.session.scalars(
                select(CaseAttachment)
                .where(CaseAttachment.case_id == case_id)
                .order_by(CaseAttachment.uploaded_on, CaseAttachment.id)
            )
        ).all()

    async def attachment(self, case_id: uuid.UUID, attachment_id: uuid.UUID) -> CaseAttachment | None:
        return await self.session.scalar(
            select(CaseAttachment).where(CaseAttachment.id == attachment_id, CaseAttachment.case_id == case_id)
        )

    async def attachment_usage(self, case_id: uuid.UUID) -> tuple[int, int]:
        count, total = (
            await self.session.execute(
                select(
                    func.count(), cast(func.coalesce(func.sum(CaseAttachment.stored_bytes), 0), BigInteger)
                ).where(
                    CaseAttachment.case_id == case_id
                )
            )
        ).one()
        return int(count), int(total)

    async def add_chunk(self, attachment_id: uuid.UUID, index: int, sealed: bytes) -> None:
        await self.session.execute(
            insert(AttachmentChunk).values(attachment_id=attachment_id, index=index, sealed=sealed)
        )

    async def chunk(self, attachment_id: uuid.UUID, index: int) -> bytes | None:
        return await self.session.scalar(
            select(AttachmentChunk.sealed).where(
                AttachmentChunk.attachment_id == attachment_id, AttachmentChunk.index == index
            )
        )
