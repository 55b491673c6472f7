"""The reporter's mailbox: receipt login, their own report, messages, attachments.

The server can open a case's content only while a reporter's session token is presented:
the token carries the receipt's master secret (sealed under the server's key), from which
the reporter's private key is derived, which opens the content key. Between requests the
server holds nothing that would let it read the case.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.notifications import EventKind
from app.notifications.outbox import Outbox
from app.cases.attachment_store import AttachmentStore
from app.cases.models import Case, CaseAttachment, CaseMessage
from app.cases.repository import CaseContentRepository
from app.context import AppContext, Service
from app.domain import crypto
from app.domain.attachments import SNIFF_BYTES, UploadTooSlow, check_file_type, clean_filename
from app.domain.budgets import RECEIPT_FAILURES, window_start
from app.domain.clock import organisation_date
from app.domain.errors import Conflict, DomainError, NotAuthenticated, NotFound, TooManyAttempts
from app.domain.identity import ReporterAnswer
from app.domain.receipts import ReceiptSecrets, derive_receipt_secrets, parse_receipt
from app.domain.triage import public_status
from app.identity.mailbox import Mailbox, ReporterRequestView
from app.intake.repository import IntakeRepository
from app.platform.multipart import MalformedMultipart, PartData, PartEnd, PartEvent, PartStart

logger = logging.getLogger("cleanwindow.reporter")


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
    # Opens the reporter's own identity key (their contact, sealed apart from the report).
    reporter_key: crypto.PrivateKey


@dataclass(frozen=True)
class AttachmentInfo:
    id: uuid.UUID
    filename: str | None
    media_type: str | None
    size_bytes: int | None
    uploaded_on: date
    author: str
    # False: its sealed description does not open (damaged in the database); the
    # report's other attachments and messages are shown all the same.
    readable: bool = True


class AttachmentUnreadable(Conflict):
    slug = "attachment-unreadable"
    title = "This attachment does not open"


class ReporterService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = IntakeRepository(session)
        self.content = CaseContentRepository(session)
        self.intake = self.settings.intake
        self.codec = context.reporter_sessions

    # --- sessions --------------------------------------------------------------------

    async def open_session(self, receipt: str, now: datetime) -> OpenedSession:
        """Like a staff login: a hashing slot first (a busy service answers 503 and counts
        nothing); then the attempt is counted as a failure in a transaction of its own that
        commits at once, so parallel guesses all count before any is evaluated; a receipt
        that opens a case takes its count back."""
        digits = parse_receipt(receipt)  # a typo costs nothing and counts as nothing
        window = window_start(now, self.intake.budget_window_seconds)
        async with self.context.receipt_cpu.slot() as run_in_slot:
            async with self.context.own_transaction() as session:
                reservation = IntakeRepository(session)
                salt = await self.context.receipt_salt.get(reservation)
                attempts = await reservation.spend_budget(RECEIPT_FAILURES, window)
            if attempts > self.intake.receipt_failures_per_window:
                window_end = window + timedelta(seconds=self.intake.budget_window_seconds)
                raise TooManyAttempts(
                    "Too many wrong receipts were tried on this service recently; receipt "
                    "logins pause until the current window ends.",
                    retry_after_seconds=max(1, math.ceil((window_end - now).total_seconds())),
                )
            secrets: ReceiptSecrets = await run_in_slot(
                derive_receipt_secrets, digits, salt, self.context.key_derivation.receipts
            )
        # Only a case whose tag was made under this scheme can match: the tag is only
        # reproducible with the parameters its scheme number stands for.
        case = await self.repository.case_by_receipt_tag(
            secrets.lookup_tag, self.context.key_derivation.receipts.number
        )
        if case is None:
            raise InvalidReceipt("No report has this receipt.")
        await self.repository.refund_budget(RECEIPT_FAILURES, window)
        expires_at = now + timedelta(minutes=self.intake.reporter_session_minutes)
        return OpenedSession(self.codec.issue(case.id, secrets.master, expires_at), expires_at)

    async def authenticate(
        self, token: str | None, now: datetime, *, lock: bool = False, session: AsyncSession | None = None
    ) -> ReporterContext:
        repository, content = (
            (self.repository, self.content) if session is None else (IntakeRepository(session), CaseContentRepository(session))
        )
        opened = self.codec.open(token, now)
        secrets = ReceiptSecrets(opened.master)
        case = await repository.case_by_id(opened.case_id, lock=lock)
        # A purged case keeps no receipt tag: a session opened before the purge opens nothing.
        if case is None or case.receipt_tag is None or not hmac.compare_digest(case.receipt_tag, secrets.lookup_tag):
            raise NotAuthenticated("The session is invalid or has expired; enter the receipt again.")
        sealed_key = await content.reporter_key(case.id)
        if sealed_key is None:
            raise NotAuthenticated("This report can no longer be opened with its receipt.")
        reporter_key = secrets.reporter_key()
        content_key = crypto.open_content_key(sealed_key.sealed_key, reporter_key, case.id)
        return ReporterContext(case, content_key, reporter_key)

    async def authenticate_briefly(self, token: str | None, now: datetime) -> ReporterContext:
        """In a transaction of its own that ends at once: for requests that stream for
        as long as the client likes, during which the request's session stays unused."""
        async with self.context.own_transaction() as session:
            return await self.authenticate(token, now, session=session)

    # --- reading ---------------------------------------------------------------------

    async def report(self, context: ReporterContext) -> dict:
        case = context.case
        mailbox = Mailbox(self.session, self.settings.zone)
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
                **open_message(context.content_key, message),
            }
            for message in await self.content.messages(case.id)
        ]
        return {
            "status": public_status(case.state),
            "received_on": case.received_on,
            "channel": case.channel,
            "category": case.category,
            "org_unit": case.org_unit,
            "language": case.language,
            "content": report["content"],
            # Sealed apart since identities have their own key; inside the report before.
            "contact": await mailbox.own_identity(case.id, context.reporter_key) or report["contact"],
            "identity_requests": await mailbox.requests(case.id),
            "messages": messages,
            "attachments": [
                attachment_info(context.content_key, attachment)
                for attachment in await self.content.attachments(case.id)
            ],
        }

    # --- writing ---------------------------------------------------------------------

    async def answer_identity_request(
        self, context: ReporterContext, request_id: uuid.UUID, answer: ReporterAnswer, now: datetime
    ) -> ReporterRequestView:
        """Consent to, or decline, a request to learn the reporter's identity."""
        return await Mailbox(self.session, self.settings.zone).answer(
            context.case.id, request_id, answer, organisation_date(now, self.settings.zone)
        )

    async def add_message(self, context: ReporterContext, body: str, now: datetime) -> CaseMessage:
        case = context.case  # locked by authenticate(lock=True): message numbers stay unique
        message = CaseMessage(
            id=uuid.uuid4(),
            case_id=case.id,
            seq=await self.content.next_message_seq(case.id),
            author="reporter",
            sent_on=organisation_date(now, self.settings.zone),
            seal_format=crypto.MESSAGE_SEAL_FORMAT,
        )
        message.sealed_body = crypto.seal_message(
            context.content_key, body, case_id=case.id, message_id=message.id, author=message.author
        )
        await self.content.add(message)
        await Outbox(self.session, self.settings).emit(
            EventKind.REPORTER_MESSAGE,
            now,
            audience=["triage"],
            case_id=case.id,
            drill_campaign_id=case.drill_campaign_id,
            recipient_id=case.assignee_id,
        )
        return message

    async def add_attachment(
        self,
        context: ReporterContext,
        events: AsyncIterator[PartEvent],
        now: datetime,
        *,
        at_most_bytes: int | None = None,
    ) -> AttachmentInfo:
        """Seals the file as it streams in and stages it chunk by chunk, each write in a
        short transaction of its own, then publishes it under the case's lock once the
        per-report limits are checked again (app/cases/attachment_store.py). Nothing is
        held between chunks; past the upload deadline the upload ends with 408. Whatever
        refuses the upload, its staged chunks are removed."""
        settings = self.intake.attachments
        limits = settings.limits
        store = AttachmentStore(self.context.sessionmaker)
        case_id = context.case.id
        today = organisation_date(now, self.settings.zone)
        deadline = asyncio.get_running_loop().time() + settings.upload_timeout_seconds
        room = limits.room(*await store.usage(case_id))  # a full report is refused before the body is read

        attachment = CaseAttachment(
            id=uuid.uuid4(),
            staging_case_id=case_id,
            staged_on=today,
            author="reporter",
            uploaded_on=today,
            stored_bytes=0,
            chunk_bytes=settings.chunk_bytes,
            chunk_count=1,
            sealed_meta=b"",
        )
        sealer = crypto.AttachmentSealer(context.content_key, case_id, attachment.id, settings.chunk_bytes)
        started = finished = staged = False
        pending = bytearray()  # the first bytes, held until the type has been checked
        media_type: str | None = None
        filename = "attachment"
        chunk_count = stored_bytes = 0

        async def write(sealed_chunks: list[bytes]) -> None:
            nonlocal chunk_count, stored_bytes
            await store.add_chunks(attachment.id, chunk_count, sealed_chunks)
            chunk_count += len(sealed_chunks)
            stored_bytes += sum(len(sealed) for sealed in sealed_chunks)

        async def feed(data: bytes) -> None:
            limits.check_size(sealer.size + len(data), room)
            await write(sealer.feed(data))

        async def begin() -> None:
            nonlocal media_type, staged, room
            media_type = check_file_type(media_type, bytes(pending)).media_type
            staged = True  # from here on, whatever happens, the staging is discarded
            room = await store.stage(attachment, limits, at_most_bytes=at_most_bytes)
            await feed(bytes(pending))
            pending.clear()

        try:
            async for event in until_deadline(deadline, events):
                if isinstance(event, PartStart):
                    if event.name != "file" or started:
                        raise MalformedMultipart("Send exactly one part, named `file`.")
                    started = True
                    filename, media_type = clean_filename(event.filename), event.content_type
                elif isinstance(event, PartData) and started and not finished:
                    if staged:
                        await feed(event.data)
                    else:
                        pending.extend(event.data)
                        if len(pending) >= SNIFF_BYTES:
                            await begin()
                elif isinstance(event, PartEnd) and started:
                    finished = True
            if not started or not finished:
                raise MalformedMultipart("The body has no complete part named `file`.")
            if not staged:
                await begin()  # a file shorter than the sniffing window
            await write([sealer.finish()])
            sealed_meta = crypto.seal(
                context.content_key,
                json.dumps(
                    {"filename": filename, "media_type": media_type, "size_bytes": sealer.size}, ensure_ascii=False
                ).encode(),
                purpose=crypto.PURPOSE_ATTACHMENT_META,
                case_id=case_id,
                item_id=attachment.id,
            )
            await store.publish(
                attachment.id,
                case_id,
                size=sealer.size,
                limits=limits,
                uploaded_on=today,
                stored_bytes=stored_bytes,
                chunk_count=chunk_count,
                sealed_meta=sealed_meta,
            )
        except BaseException:
            if staged:
                await discard_staging(store, attachment.id)
            raise
        return AttachmentInfo(attachment.id, filename, media_type, sealer.size, today, "reporter")

    async def attachment(self, context: ReporterContext, attachment_id: uuid.UUID) -> tuple[AttachmentInfo, AsyncIterator[bytes]]:
        attachment = await self.content.attachment(context.case.id, attachment_id)
        if attachment is None:
            raise NotFound("This report has no such attachment.")
        info = attachment_info(context.content_key, attachment)
        if not info.readable:
            raise AttachmentUnreadable(
                "This attachment's sealed description does not open, so the file cannot be "
                "served; the report's other attachments are not affected."
            )
        chunks = AttachmentStore(self.context.sessionmaker).sealed_chunks(attachment)

        async def plaintext() -> AsyncIterator[bytes]:
            # Runs while the response streams, after the request's session has closed.
            async for index, sealed in chunks:
                yield crypto.open_attachment_chunk(
                    context.content_key,
                    sealed,
                    case_id=context.case.id,
                    attachment_id=attachment.id,
                    index=index,
                    final=index == attachment.chunk_count - 1,
                )

        return info, plaintext()


async def until_deadline(deadline: float, events: AsyncIterator[PartEvent]) -> AsyncIterator[PartEvent]:
    """The events, or UploadTooSlow once the event loop's clock passes `deadline` while
    waiting for the next one: a trickling client is cut off, not waited for."""
    iterator = aiter(events)
    while True:
        timer = asyncio.timeout_at(deadline)
        try:
            async with timer:
                event = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if not timer.expired():
                raise
            raise UploadTooSlow("The upload took longer than this service waits for one; send it again.") from None
        yield event


async def discard_staging(store: AttachmentStore, attachment_id: uuid.UUID) -> None:
    try:
        # Shielded: a request cancelled by a disconnect still clears what it staged.
        await asyncio.shield(store.discard(attachment_id))
    except (SQLAlchemyError, OSError) as error:  # the database is unreachable: the cleanup job removes it
        logger.warning("a refused upload's staging was left behind", extra={"error_type": type(error).__name__})


def open_message(content_key: bytes, message: CaseMessage) -> dict:
    """The body and its marks. The server checks only a staff message's length (it cannot
    open it), so one that does not open is shown as unreadable, never allowed to break the
    whole mailbox."""
    try:
        opened = crypto.open_message(
            content_key,
            message.sealed_body,
            case_id=message.case_id,
            message_id=message.id,
            author=message.author,
            seal_format=message.seal_format,
        )
    except crypto.DecryptionFailed:
        return {"body": None, "readable": False, "author_verified": False}
    return {"body": opened.body, "readable": True, "author_verified": opened.author_verified}


def attachment_info(content_key: bytes, attachment: CaseAttachment) -> AttachmentInfo:
    """Opened on its own, like a message: one damaged attachment must not lock the
    reporter out of the whole report."""
    try:
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
            attachment.id,
            meta["filename"],
            meta["media_type"],
            meta["size_bytes"],
            attachment.uploaded_on,
            attachment.author,
        )
    except (crypto.DecryptionFailed, ValueError, KeyError, TypeError):
        return AttachmentInfo(attachment.id, None, None, None, attachment.uploaded_on, attachment.author, readable=False)
