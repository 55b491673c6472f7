"""Attachment chunks into and out of the database, each step in a short transaction of its own.

An upload or a download lasts as long as the reporter's network (or an attacker) makes it
last. Held for that long, a pooled connection or the case's row lock would let a handful
of slow clients stall every endpoint. So nothing is held between two chunks:

- an upload is *staged*: its row belongs to the case only through `staging_case_id`, which
  no query of a case's attachments looks at (they all go by `case_id`), and its sealed
  chunks are written as they arrive, each batch in a transaction of its own. Staging
  reserves, under the case's lock, the room the file may take (no more than the body's
  declared length), counting the uploads already staging at theirs, so parallel uploads
  cannot store more than the report may hold while they last;
- it is *published* in one short transaction that locks the case row, checks the
  per-report limits against the attachments already published (so they hold exactly
  under parallel uploads), and moves the row onto the case;
- a refused or abandoned upload is discarded, its chunks with it; staging left behind by
  a killed process is removed by the `cleanup.expired` job once it is older than an upload
  can last (`app/cases/housekeeping.py`);
- a download reads one chunk per transaction.

Like logins, these steps deliberately open transactions of their own instead of using
the request's session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy import BigInteger, cast, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import AttachmentChunk, Case, CaseAttachment
from app.db.session import SessionMaker, own_transaction
from app.domain.attachments import AttachmentLimits
from app.domain.errors import NotFound

class MissingChunk(RuntimeError):
    """A published attachment lacks a chunk: the database was damaged or edited."""


async def published_usage(session: AsyncSession, case_id: uuid.UUID) -> tuple[int, int]:
    """Number and stored bytes of the case's published attachments."""
    count, total = (
        await session.execute(
            select(func.count(), cast(func.coalesce(func.sum(CaseAttachment.stored_bytes), 0), BigInteger)).where(
                CaseAttachment.case_id == case_id
            )
        )
    ).one()
    return int(count), int(total)


async def usage_with_staging(session: AsyncSession, case_id: uuid.UUID) -> tuple[int, int]:
    """Number and bytes of the case's published attachments and of its uploads still
    staging (a staged row's `stored_bytes` is the room it reserved)."""
    count, total = (
        await session.execute(
            select(func.count(), cast(func.coalesce(func.sum(CaseAttachment.stored_bytes), 0), BigInteger)).where(
                or_(CaseAttachment.case_id == case_id, CaseAttachment.staging_case_id == case_id)
            )
        )
    ).one()
    return int(count), int(total)


async def lock_case(session: AsyncSession, case_id: uuid.UUID) -> None:
    """The case row's lock orders stagings and publications (and messages, transitions,
    and the retention purge) on this case. A purged case takes no more files: an upload
    that began before the purge must not leave its chunks behind it."""
    found = (
        await session.execute(select(Case.id, Case.purged_on).where(Case.id == case_id).with_for_update())
    ).one_or_none()
    if found is None or found.purged_on is not None:
        raise NotFound("This report no longer exists.")


class AttachmentStore:
    def __init__(self, sessionmaker: SessionMaker):
        self.sessionmaker = sessionmaker

    async def usage(self, case_id: uuid.UUID) -> tuple[int, int]:
        """Unlocked, so only a first answer: `stage` and `publish` check again under the lock."""
        async with own_transaction(self.sessionmaker) as session:
            return await usage_with_staging(session, case_id)

    async def stage(
        self, attachment: CaseAttachment, limits: AttachmentLimits, *, at_most_bytes: int | None = None
    ) -> int:
        """Writes the staged row and returns the room it reserves: what the report may
        still take once the attachments published and those still staging (each counted
        at the room it reserved, held in its `stored_bytes` until it is published) are set
        aside, and no more than `at_most_bytes` (the request body's declared length) when
        that is known. Under the case's lock, so parallel uploads cannot together stage
        more than the report may hold."""
        assert attachment.case_id is None and attachment.staging_case_id is not None
        case_id = attachment.staging_case_id
        async with own_transaction(self.sessionmaker) as session:
            await lock_case(session, case_id)
            room = limits.room(*await usage_with_staging(session, case_id))
            if at_most_bytes is not None:
                room = min(room, at_most_bytes)
            attachment.stored_bytes = room
            session.add(attachment)
        return room

    async def add_chunks(self, attachment_id: uuid.UUID, first_index: int, sealed_chunks: Sequence[bytes]) -> None:
        if not sealed_chunks:
            return
        try:
            async with own_transaction(self.sessionmaker) as session:
                await session.execute(
                    insert(AttachmentChunk),
                    [
                        {"attachment_id": attachment_id, "index": first_index + offset, "sealed": sealed}
                        for offset, sealed in enumerate(sealed_chunks)
                    ],
                )
        except IntegrityError:
            # The staged row is gone: its case's content was deleted by retention (or the
            # staging was discarded) while the file streamed in.
            raise NotFound("This report no longer takes files.") from None

    async def publish(
        self,
        attachment_id: uuid.UUID,
        case_id: uuid.UUID,
        *,
        size: int,
        limits: AttachmentLimits,
        uploaded_on: date,
        stored_bytes: int,
        chunk_count: int,
        sealed_meta: bytes,
    ) -> None:
        """Attaches the staged upload to its case, if the report still has room for `size`
        bytes; raises the limit's error otherwise (and publishes nothing)."""
        async with own_transaction(self.sessionmaker) as session:
            await lock_case(session, case_id)
            limits.check_size(size, limits.room(*await published_usage(session, case_id)))
            published = await session.execute(
                update(CaseAttachment)
                .where(CaseAttachment.id == attachment_id, CaseAttachment.staging_case_id == case_id)
                .values(
                    case_id=case_id,
                    staging_case_id=None,
                    staged_on=None,
                    uploaded_on=uploaded_on,
                    stored_bytes=stored_bytes,
                    chunk_count=chunk_count,
                    sealed_meta=sealed_meta,
                )
            )
            if published.rowcount != 1:
                raise RuntimeError(f"staged upload {attachment_id} disappeared before it was published")

    async def discard(self, attachment_id: uuid.UUID) -> None:
        """Removes a staged upload and its chunks; a published one is never touched."""
        async with own_transaction(self.sessionmaker) as session:
            await session.execute(
                delete(CaseAttachment).where(CaseAttachment.id == attachment_id, CaseAttachment.case_id.is_(None))
            )

    async def sealed_chunks(self, attachment: CaseAttachment) -> AsyncIterator[tuple[int, bytes]]:
        """(index, sealed chunk) in order, one short session per chunk: a reader who takes
        an hour over a file holds a pooled connection for a few milliseconds at a time."""
        for index in range(attachment.chunk_count):
            async with own_transaction(self.sessionmaker) as session:
                sealed = await session.scalar(
                    select(AttachmentChunk.sealed).where(
                        AttachmentChunk.attachment_id == attachment.id, AttachmentChunk.index == index
                    )
                )
            if sealed is None:
                raise MissingChunk(f"attachment {attachment.id} lacks chunk {index}")
            yield index, sealed
