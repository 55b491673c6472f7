"""The reporter's mailbox: receipt login, their own report, messages, attachments.

The server can open a case's content only while a reporter's session token is presented:
the token carries the receipt's master secret (sealed under the server's key), from which
the reporter's private key is derived, which opens the content key. Between requests the
server holds nothing that would let it read the case.
"""

from __future__ import annotations

import hmac
import json
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import Case, CaseAttachment, CaseMessage
from app.db.session import SessionMaker
from app.domain import crypto
from app.domain.attachments import (
    SNIFF_BYTES,
    AttachmentLimitReached,
    AttachmentTooLarge,
    check_file_type,
    clean_filename,
)
from app.domain.errors import DomainError, NotAuthenticated, NotFound, TooManyAttempts
from app.domain.kdf import ReceiptScheme
from app.domain.receipts import ReceiptSecrets, derive_receipt_secrets, parse_receipt
from app.domain.reporter_access import ReporterSessionCodec
from app.domain.triage import public_status
from app.intake.repository import IntakeRepository
from app.intake.service import RECEIPT_FAILURES, ReceiptSalt, window_start
from app.platform.cpu import CpuBudget
from app.platform.multipart import MalformedMultipart, PartData, PartEnd, PartEvent, PartStart
from app.settings import Settings


class InvalidReceipt(DomainError):
    slug = "invalid-receipt"
    title = "Unknown receipt"
    status = 401


@dataclass(frozen=True)
class OpenedSession:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class ReporterContext:
    case: Case
    content_key: bytes


@dataclass(frozen=True)
class AttachmentInfo:
    id: uuid.UUID
    filename: str
    media_type: str
    size_bytes: int
    uploaded_on: date
    author: str


class ReporterService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        sessionmaker: SessionMaker,
        settings: Settings,
        receipt_cpu: CpuBudget,
        receipt_salt: ReceiptSalt,
        receipt_scheme: ReceiptScheme,
    ):
        self.session = session
        self.repository = IntakeRepository(session)
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.intake = settings.intake
        self.receipt_cpu = receipt_cpu
        self.receipt_salt = receipt_salt
        self.receipt_scheme = receipt_scheme
        self.codec = ReporterSessionCodec(settings.secret_key_bytes)

    # --- sessions --------------------------------------------------------------------

    async def open_session(self, receipt: str, now: datetime) -> OpenedSession:
        """Like a staff login: a hashing slot first (a busy service answers 503 and counts
        nothing); then the attempt is counted as a failure in a transaction of its own that
        commits at once, so parallel guesses all count before any is evaluated; a receipt
        that opens a case takes its count back."""
        digits = parse_receipt(receipt)  # a typo costs nothing and counts as nothing
        window = window_start(now, self.intake.budget_window_seconds)
        async with self.receipt_cpu.slot() as run_in_slot:
            async with self.sessionmaker() as session, session.begin():
                reservation = IntakeRepository(session)
                salt = await self.receipt_salt.get(reservation)
                attempts = await reservation.spend_budget(RECEIPT_FAILURES, window)
            if attempts > self.intake.receipt_failures_per_window:
                window_end = window + timedelta(seconds=self.intake.budget_window_seconds)
                raise TooManyAttempts(
                    "Too many wrong receipts were tried on this service recently; receipt "
                    "logins pause until the current window ends.",
                    retry_after_seconds=max(1, math.ceil((window_end - now).total_seconds())),
                )
            secrets: ReceiptSecrets = await run_in_slot(
                derive_receipt_secrets, digits, salt, self.receipt_scheme
            )
        # Only a case whose tag was made under this scheme can match: the tag is only
        # reproducible with the parameters its scheme number stands for.
        case = await self.repository.case_by_receipt_tag(
            secrets.lookup_tag, self.receipt_scheme.number
        )
        if case is None:
            raise InvalidReceipt("No report has this receipt.")
        await self.repository.refund_budget(RECEIPT_FAILURES, window)
        expires_at = now + timedelta(minutes=self.intake.reporter_session_minutes)
        return OpenedSession(self.codec.issue(case.id, secrets.master, expires_at), expires_at)

    async def authenticate(self, token: str | None, now: datetime, *, lock: bool = False) -> ReporterContext:
        session = self.codec.open(token, now)
        secrets = ReceiptSecrets(session.master)
        case = await self.repository.case_by_id(session.case_id, lock=lock)
        if case is None or not hmac.compare_digest(case.receipt_tag, secrets.lookup_tag):
            raise NotAuthenticated("The session is invalid or has expired; enter the receipt again.")
        sealed_key = await self.repository.reporter_key(case.id)
        if sealed_key is None:
            raise NotAuthenticated("This report can no longer be opened with its receipt.")
        content_key = crypto.open_content_key(sealed_key.sealed_key, secrets.reporter_key(), case.id)
        return ReporterContext(case, content_key)

    # --- reading ---------------------------------------------------------------------

    async def report(self, context: ReporterContext) -> dict:
        case = context.case
        report = json.loads(
            crypto.open_sealed(
                context.content_key, case.sealed_report, purpose=crypto.PURPOSE_REPORT, case_id=case.id
            )
        )
        messages = [
            {
                "id": message.id,
                "seq": message.seq,
                "author": message.author,
                "sent_on": message.sent_on,
                "body": open_message(context.content_key, message),
            }
            for message in await self.repository.messages(case.id)
        ]
        return {
            "status": public_status(case.state),
            "received_on": case.received_on,
            "channel": case.channel,
            "category": case.category,
            "org_unit": case.org_unit,
            "language": case.language,
            "content": report["content"],
            "contact": report["contact"],
            "messages": messages,
            "attachments": [
                attachment_info(context.content_key, attachment)
                for attachment in await self.repository.attachments(case.id)
            ],
        }

    # --- writing ---------------------------------------------------------------------

    async def add_message(self, context: ReporterContext, body: str, now: datetime) -> CaseMessage:
        case = context.case  # locked by authenticate(lock=True): message numbers stay unique
        message = CaseMessage(
            id=uuid.uuid4(),
            case_id=case.id,
            seq=await self.repository.next_message_seq(case.id),
            author="reporter",
            sent_on=now.date(),
        )
        message.sealed_body = seal_message(context.content_key, case.id, message.id, body)
        await self.repository.add(message)
        return message

    async def add_attachment(
        self, context: ReporterContext, events: AsyncIterator[PartEvent], now: datetime
    ) -> AttachmentInfo:
        limits = self.intake.attachments
        case = context.case  # locked: the per-report limits hold under parallel uploads
        count, total = await self.repository.attachment_usage(case.id)
        if count >= limits.max_per_case:
            raise AttachmentLimitReached(f"A report can have at most {limits.max_per_case} attachments.")
        room = min(limits.max_bytes, limits.max_total_bytes_per_case - total)
        if room <= 0:
            raise AttachmentLimitReached("This report's attachments have reached their total size limit.")

        attachment = CaseAttachment(
            id=uuid.uuid4(),
            case_id=case.id,
            author="reporter",
            uploaded_on=now.date(),
            stored_bytes=0,
            chunk_bytes=limits.chunk_bytes,
            chunk_count=1,
            sealed_meta=b"",
        )
        sealer = crypto.AttachmentSealer(context.content_key, case.id, attachment.id, limits.chunk_bytes)
        started = finished = checked = False
        pending = bytearray()  # the first bytes, held until the type has been checked
        media_type: str | None = None
        filename = "attachment"
        chunk_index = stored_bytes = 0

        async def store(data: bytes, sealed_chunks: list[bytes] | None = None) -> None:
            nonlocal chunk_index, stored_bytes
            if sealer.size + len(data) > room:
                raise AttachmentTooLarge(
                    f"The file is larger than the {room} bytes this report may still take.", limit=room
                )
            for sealed in sealer.feed(data) if sealed_chunks is None else sealed_chunks:
                await self.repository.add_chunk(attachment.id, chunk_index, sealed)
                chunk_index += 1
                stored_bytes += len(sealed)

        async def begin() -> None:
            nonlocal media_type, checked
            media_type = check_file_type(media_type, bytes(pending)).media_type
            checked = True
            await self.repository.add(attachment)
            await store(bytes(pending))
            pending.clear()

        async for event in events:
            if isinstance(event, PartStart):
                if event.name != "file" or started:
                    raise MalformedMultipart("Send exactly one part, named `file`.")
                started = True
                filename, media_type = clean_filename(event.filename), event.content_type
            elif isinstance(event, PartData) and started and not finished:
                if checked:
                    await store(event.data)
                else:
                    pending.extend(event.data)
                    if len(pending) >= SNIFF_BYTES:
                        await begin()
            elif isinstance(event, PartEnd) and started:
                finished = True
        if not started or not finished:
            raise MalformedMultipart("The body has no complete part named `file`.")
        if not checked:
            await begin()  # a file shorter than the sniffing window
        await store(b"", [sealer.finish()])
        attachment.stored_bytes = stored_bytes
        attachment.chunk_count = chunk_index
        attachment.sealed_meta = crypto.seal(
            context.content_key,
            json.dumps(
                {"filename": filename, "media_type": media_type, "size_bytes": sealer.size}, ensure_ascii=False
            ).encode(),
            purpose=crypto.PURPOSE_ATTACHMENT_META,
            case_id=case.id,
            item_id=attachment.id,
        )
        await self.session.flush()
        return AttachmentInfo(attachment.id, filename, media_type, sealer.size, attachment.uploaded_on, "reporter")

    async def attachment(self, context: ReporterContext, attachment_id: uuid.UUID) -> tuple[AttachmentInfo, AsyncIterator[bytes]]:
        attachment = await self.repository.attachment(context.case.id, attachment_id)
        if attachment is None:
            raise NotFound("This report has no such attachment.")
        info = attachment_info(context.content_key, attachment)

        async def plaintext() -> AsyncIterator[bytes]:
            # Runs while the response streams, after the request's session has closed.
            async with self.sessionmaker() as session:
                repository = IntakeRepository(session)
                for index in range(attachment.chunk_count):
                    sealed = await repository.chunk(attachment.id, index)
                    if sealed is None:
                        raise crypto.DecryptionFailed("An attachment chunk is missing.")
                    yield crypto.open_attachment_chunk(
                        context.content_key,
                        sealed,
                        case_id=attachment.case_id,
                        attachment_id=attachment.id,
                        index=index,
                        final=index == attachment.chunk_count - 1,
                    )

        return info, plaintext()


def seal_message(content_key: bytes, case_id: uuid.UUID, message_id: uuid.UUID, body: str) -> bytes:
    return crypto.seal(
        content_key, body.encode(), purpose=crypto.PURPOSE_MESSAGE, case_id=case_id, item_id=message_id
    )


def open_message(content_key: bytes, message: CaseMessage) -> str:
    return crypto.open_sealed(
        content_key, message.sealed_body, purpose=crypto.PURPOSE_MESSAGE, case_id=message.case_id, item_id=message.id
    ).decode()


def attachment_info(content_key: bytes, attachment: CaseAttachment) -> AttachmentInfo:
    meta = json.loads(
        crypto.open_sealed(
            content_key,
            attachment.sealed_meta,
            purpose=crypto.PURPOSE_ATTACHMENT_META,
            case_id=attachment.case_id,
            item_id=attachment.id,
        )
    )
    return AttachmentInfo(
        attachment.id, meta["filename"], meta["media_type"], meta["size_bytes"], attachment.uploaded_on, attachment.author
    )
