"""Appending to the audit chain, paging it, and verifying it."""

from __future__ import annotations

import uuid
from collections import namedtuple
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry, AuditHead, AuditWindowCount
from app.domain.audit import (
    COUNTING_WINDOW_SECONDS,
    AuditAction,
    AuditRecord,
    ChainVerifier,
    StoredEntry,
    Verification,
    counting_window_start,
    entry_hash,
)

VERIFY_BATCH = 5000
_LOG = AuditEntry.__table__
_HEAD = AuditHead.__table__
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
# Inserts the entry and advances the head in one statement, built once (every audited
# request runs it).
_APPEND = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
    .add_cte(
        insert(_LOG)
        .values({column: bindparam(column) for column in (
            "seq", "occurred_at", "action", "actor_id", "actor_username", "actor_role", "case_id", "details",
            "prev_hash", "hash",
        )})
        .cte("appended")
    )
)

# Core, not the ORM's bulk delete: every read of the log runs it, mostly to find nothing.
_WINDOWS = AuditWindowCount.__table__
_TAKE_ENDED_WINDOWS = (
    delete(_WINDOWS)
    .where(
        tuple_(_WINDOWS.c.action, _WINDOWS.c.window_start).in_(
            select(_WINDOWS.c.action, _WINDOWS.c.window_start)
            .where(_WINDOWS.c.window_start < bindparam("window_start"))
            .with_for_update(skip_locked=True)
        )
    )
    .returning(_WINDOWS.c.action, _WINDOWS.c.window_start, _WINDOWS.c.count)
)
_ENDED_WINDOWS_EXIST = select(exists().where(_WINDOWS.c.window_start < bindparam("window_start")))
# A page is read as rows: a hundred entries loaded as objects cost more than the query.
_PAGE = select(*_LOG.columns).order_by(_LOG.c.seq.desc())
# ... as named tuples, whose attributes cost a fraction of a Row's to read.
LogRow = namedtuple("LogRow", [column.name for column in _LOG.columns])


class Actor(Protocol):
    """A staff account as the log names it (a StaffUser, or a login attempt's account)."""

    id: uuid.UUID
    username: str
    role: str


class AuditLog:
    """Appends run inside the caller's transaction, so an event and its audit entry commit
    or vanish together. The head row's lock orders appends; it is taken last and held only
    until the caller commits, so every transaction that audits waits at most for one other
    transaction's tail."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def append(self, record: AuditRecord) -> int:
        """Appends the entry and returns its seq. Two round trips, in Core rather than through the ORM (an entry is never read
        back in the transaction that writes it): the head row locked and read, then one
        statement that inserts the entry and advances the head."""
        head = (await self.session.execute(_LOCK_HEAD)).one_or_none()
        if head is None:
            raise RuntimeError("the audit head row is missing; run `cleanwindow db upgrade`")
        seq = head.seq + 1
        digest = entry_hash(head.hash, seq, record)
        await self.session.execute(
            _APPEND,
            {
                "seq": seq,
                "occurred_at": record.occurred_at,
                "action": str(record.action),
                "actor_id": record.actor_id,
                "actor_username": record.actor_username,
                "actor_role": record.actor_role,
                "case_id": record.case_id,
                "details": dict(record.details),
                "prev_hash": head.hash,
                "hash": digest,
                "head_seq": seq,
                "head_hash": digest,
            },
        )
        return seq

    async def record(
        self,
        event: AuditAction,
        now: datetime,
        actor: Actor | None,
        *,
        case_id: uuid.UUID | None = None,
        **details: Any,
    ) -> int:
        return await self.append(
            AuditRecord(
                occurred_at=now,
                action=event,
                actor_id=actor.id if actor else None,
                actor_username=actor.username if actor else None,
                actor_role=actor.role if actor else None,
                case_id=case_id,
                details=details,
            )
        )

    async def count(self, event: AuditAction, now: datetime) -> None:
        """Count an event in its hour instead of appending an entry for it; the hour's
        count becomes one entry once the hour has ended. Ended windows are written here
        too, so the first counted event of a new hour writes the last one (after the
        count, so that the head row is still the last lock taken)."""
        await self.session.execute(
            insert(AuditWindowCount)
            .values(action=str(event), window_start=counting_window_start(now), count=1)
            .on_conflict_do_update(
                index_elements=[AuditWindowCount.action, AuditWindowCount.window_start],
                set_={"count": AuditWindowCount.count + 1},
            )
        )
        await self.write_ended_windows(now)

    async def has_ended_windows(self, now: datetime) -> bool:
        """Whether a counted window ended before `now` waits to be written (a plain read,
        no lock: a reader that misses one leaves it to the next or to the cleanup job)."""
        return bool(await self.session.scalar(_ENDED_WINDOWS_EXIST, {"window_start": counting_window_start(now)}))

    async def write_ended_windows(self, now: datetime) -> int:
        """Append one entry per counted window that ended before `now` (dated `now`, the
        window in its details) and delete its count, in the caller's transaction; returns
        how many. Rows another transaction is writing are skipped, not waited for (that
        transaction writes them), so this never waits while holding the head row."""
        rows = (await self.session.execute(_TAKE_ENDED_WINDOWS, {"window_start": counting_window_start(now)})).all()
        for action, window_start, count in sorted(rows, key=lambda row: (row.window_start, row.action)):
            await self.record(
                action,
                now,
                None,
                count=count,
                window_start=window_start.isoformat(),
                window_end=(window_start + timedelta(seconds=COUNTING_WINDOW_SECONDS)).isoformat(),
            )
        return len(rows)

    async def page(
        self,
        *,
        limit: int,
        before_seq: int | None = None,
        case_id: uuid.UUID | None = None,
        action: str | None = None,
    ) -> list[LogRow]:
        """The log's rows, newest first; the next page starts before the last seq of this one."""
        query = _PAGE.limit(limit)
        if before_seq is not None:
            query = query.where(_LOG.c.seq < before_seq)
        if case_id is not None:
            query = query.where(_LOG.c.case_id == case_id)
        if action is not None:
            query = query.where(_LOG.c.action == action)
        return [LogRow._make(row) for row in await self.session.execute(query)]

    async def verify(self) -> Verification:
        # The head and the highest stored seq in one statement, so one snapshot: an append
        # moves both in one transaction, so entries beyond the head mean tampering. Entries
        # appended while the walk runs lie beyond this head and wait for the next check.
        head = (
            await self.session.execute(
                select(AuditHead.seq, AuditHead.hash, select(func.max(AuditEntry.seq)).scalar_subquery()).where(
                    AuditHead.id == 1
                )
            )
        ).one_or_none()
        if head is None:
            raise RuntimeError("the audit head row is missing; run `cleanwindow db upgrade`")
        head_seq, head_hash, last_stored_seq = head
        verifier = ChainVerifier()
        after = 0
        while True:
            # Plain rows, not entities: a long chain must not pile up in the identity map.
            rows = (
                await self.session.execute(
                    select(*AuditEntry.__table__.columns)
                    .where(AuditEntry.seq > after, AuditEntry.seq <= head_seq)
                    .order_by(AuditEntry.seq)
                    .limit(VERIFY_BATCH)
                )
            ).all()
            if not rows:
                break
            verifier.feed(stored_entry(row) for row in rows)
            after = rows[-1].seq
        return verifier.finish(head_seq, head_hash, last_stored_seq)


def stored_entry(row: Any) -> StoredEntry:
    return StoredEntry(
        seq=row.seq,
        record=AuditRecord(
            occurred_at=row.occurred_at,
            action=row.action,
            actor_id=row.actor_id,
            actor_username=row.actor_username,
            actor_role=row.actor_role,
            case_id=row.case_id,
            details=row.details,
        ),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
