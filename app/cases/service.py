"""The staff side of a case: the queue, reading sealed cases, transitions, messages, grants.

The server never holds a content key here. It hands out ciphertext and the content key
sealed to the caller's own public key; messages and grants arrive sealed by the client.
Every rule about who may do what comes from `app.domain.triage`; every security event is
written to the audit chain in the transaction that makes it happen.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog
from app.cases.attachment_store import AttachmentStore
from app.cases.models import Case, CaseAttachment, CaseKey, CaseMessage, CaseTransition
from app.cases.repository import (
    CaseContentRepository,
    CaseFilters,
    CaseRecord,
    CaseRepository,
    QueuePosition,
    QueueRow,
)
from app.context import AppContext, Service
from app.domain import crypto
from app.domain.audit import AuditAction
from app.domain.clock import organisation_date
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.retention import refuse_if_purged
from app.domain.staff import Role
from app.domain.triage import (
    CASE_ROLES,
    Action,
    CaseState,
    Deadlines,
    Request,
    allowed_actions,
    decide,
    feedback_due,
    may_see_case,
)
from app.drills.effects import ExternalEffect, ExternalEffects
from app.staff.models import StaffUser

STATS_ROLES = frozenset({Role.TRIAGE, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN})
CASE_ROLE_NAMES = ", ".join(sorted(role.value for role in CASE_ROLES))


class NoContentKey(Conflict):
    slug = "no-content-key"
    title = "You hold no key to this case"


@dataclass(frozen=True)
class CaseView:
    case: Row | QueueRow | CaseRecord  # a row, or a named tuple of its columns: the same attributes
    assignee: str | None
    overdue: bool


@dataclass(frozen=True)
class CaseDetailView(CaseView):
    allowed_actions: list[Action]
    content_key: Row | None  # rows of case_keys, case_messages, case_attachments
    messages: Sequence[tuple[Row, str | None]]
    attachments: Sequence[Row]
    identified: bool
    identity_released_to_you: bool


@dataclass(frozen=True)
class Page:
    items: list[CaseView]
    next_cursor: str | None


def encode_cursor(position: QueuePosition) -> str:
    return crypto.b64url_encode(json.dumps([position.received_on.isoformat(), str(position.id)]).encode())


def decode_cursor(cursor: str) -> QueuePosition:
    refused = InvalidInput("The cursor is not one this service issued; start again without it.")
    try:
        position = json.loads(crypto.b64url_decode(cursor))
        if not (isinstance(position, list) and len(position) == 2 and all(isinstance(part, str) for part in position)):
            raise refused
        return QueuePosition(date.fromisoformat(position[0]), uuid.UUID(position[1]))
    except ValueError as error:  # JSON, base64, date and UUID errors are all ValueErrors
        raise refused from error


def deadlines(case: Case | Row | QueueRow | CaseRecord) -> Deadlines:
    """A case's deadline facts, from its row as the ORM loads it or as a query returns it."""
    return Deadlines(
        acknowledge_due_on=case.acknowledge_due_on,
        acknowledged_on=case.acknowledged_on,
        feedback_due_on=case.feedback_due_on,
        feedback_given_on=case.feedback_given_on,
        closed=case.state == CaseState.CLOSED.value,
    )


class CaseService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = CaseRepository(session)
        self.content = CaseContentRepository(session)
        self.audit = AuditLog(session)
        self.feedback_months = self.settings.intake.feedback_months
        self.zone = self.settings.zone

    # --- access ----------------------------------------------------------------------

    @staticmethod
    def require_case_role(user: StaffUser) -> None:
        if user.role_enum not in CASE_ROLES:
            raise Forbidden(f"Cases are open to the roles {CASE_ROLE_NAMES} only.")

    async def visible_case(self, user: StaffUser, case_id: uuid.UUID, *, lock: bool = False) -> Row:
        """The case's row, if this caller may see it: to show, or with `lock` to change
        while no one else can. A case they may not see is "not found": an investigator
        learns nothing about cases that are not theirs."""
        self.require_case_role(user)
        case = await self.repository.case_row(case_id, lock=lock)
        if case is None or not may_see_case(user.role_enum, case.assignee_id == user.id):
            raise NotFound("No case with this id is open to you.")
        return case

    @staticmethod
    def allowed_for(user: StaffUser, case: Row | CaseRecord) -> list[Action]:
        if case.purged_on is not None:
            return []  # nothing is left to reopen, answer or share
        return allowed_actions(CaseState(case.state), user.role_enum, case.assignee_id == user.id)

    # --- reading ---------------------------------------------------------------------

    async def queue(
        self, user: StaffUser, filters: CaseFilters, cursor: str | None, limit: int, now: datetime
    ) -> Page:
        self.require_case_role(user)
        today = organisation_date(now, self.zone)
        if user.role_enum is Role.INVESTIGATOR:
            if filters.assignee_id not in (None, user.id):
                return Page([], None)  # another investigator's cases: none of them are yours
            filters = dataclasses.replace(filters, assignee_id=user.id)
        after = decode_cursor(cursor) if cursor else None
        rows = await self.repository.queue(filters, after, limit + 1, today)
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [CaseView(row, row.assignee_username, deadlines(row).overdue(today)) for row in rows]
        next_cursor = encode_cursor(QueuePosition(rows[-1].received_on, rows[-1].id)) if has_more and rows else None
        return Page(items, next_cursor)

    async def assignee_id(self, username: str, caller: StaffUser) -> uuid.UUID | None:
        """The `assignee` filter: `me`, or a username; None when no account has it."""
        if username == "me":
            return caller.id
        user = await self.repository.staff_by_username(username.strip().lower())
        return user.id if user else None

    async def detail(self, user: StaffUser, case_id: uuid.UUID, now: datetime) -> CaseDetailView:
        case = await self.visible_case(user, case_id)
        keys = await self.repository.staff_keys(case.id, user.id)
        # The key sealed to the caller's current public key first; after a key change,
        # the newest grant to an older one (the caller may still keep that private key).
        content_key = next((key for key in keys if key.recipient_fingerprint == user.public_key_fingerprint), None)
        if content_key is None and keys:
            content_key = max(keys, key=lambda key: key.granted_at or datetime.min.replace(tzinfo=now.tzinfo))
        messages = await self.content.messages(case.id)
        authors = await self.repository.usernames({m.staff_user_id for m in messages if m.staff_user_id})
        view = CaseDetailView(
            case=case,
            assignee=await self._username(case.assignee_id),
            overdue=deadlines(case).overdue(organisation_date(now, self.zone)),
            allowed_actions=self.allowed_for(user, case),
            content_key=content_key,
            messages=[(message, authors.get(message.staff_user_id)) for message in messages],
            attachments=await self.content.attachments(case.id),
            **await self.repository.identity_flags(case.id, user.id),
        )
        # Last: the audit head stays locked until the request commits.
        await self.audit.record(AuditAction.CASE_READ, now, user, case_id=case.id, content_key=content_key is not None)
        return view

    async def history(self, user: StaffUser, case_id: uuid.UUID) -> Sequence[tuple[CaseTransition, str, str, str | None]]:
        case = await self.visible_case(user, case_id)
        return await self.repository.history(case.id)

    async def attachment_chunks(
        self, user: StaffUser, case_id: uuid.UUID, attachment_id: uuid.UUID, now: datetime
    ) -> tuple[CaseAttachment, AsyncIterator[bytes]]:
        case = await self.visible_case(user, case_id)
        attachment = await self.content.attachment(case.id, attachment_id)
        if attachment is None:
            raise NotFound("This case has no such attachment.")
        await self.audit.record(AuditAction.ATTACHMENT_READ, now, user, case_id=case.id, attachment_id=str(attachment.id))

        chunks = AttachmentStore(self.context.sessionmaker).sealed_chunks(attachment)

        async def length_prefixed() -> AsyncIterator[bytes]:
            # Runs while the response streams, after the request's session has committed.
            async for _, sealed in chunks:
                yield len(sealed).to_bytes(4, "big") + sealed

        return attachment, length_prefixed()

    # --- transitions -----------------------------------------------------------------

    async def transition(self, user: StaffUser, case_id: uuid.UUID, request: Request, now: datetime) -> CaseView:
        # The row lock makes check-then-write atomic: a parallel transition waits here,
        # then sees the new version and gets its 409.
        case = await self.visible_case(user, case_id, lock=True)
        refuse_if_purged(case.purged_on, f"`{request.action}` is not possible on this case")
        source = CaseState(case.state)
        target = decide(source, case.version, request, user.role_enum, case.assignee_id == user.id)

        assignee = await self._assignee(request.assignee) if request.action is Action.ACCEPT else None
        today = organisation_date(now, self.zone)
        after: dict[str, object] = {
            # Only a closing action carries one; any other step leaves the case unresolved.
            "resolution": request.resolution.value if request.resolution is not None else None,
            "state": target.value,
            # Retention counts from the last closing; a reopened case waits for the next one.
            "closed_on": today if target is CaseState.CLOSED else None,
            "version": case.version + 1,
        }
        if request.action is Action.ACKNOWLEDGE:
            after["acknowledged_on"] = today
            after["feedback_due_on"] = feedback_due(case.acknowledge_due_on, today, self.feedback_months)
        if assignee is not None:
            after["assignee_id"] = assignee.id
        if request.action is Action.REOPEN:
            # Assessed afresh: the earlier investigator no longer holds the case (the
            # history keeps who did); `accept` assigns it again.
            after["assignee_id"] = None
        moved = CaseRecord(**{**case._mapping, **after})
        moved = moved._replace(next_due_on=deadlines(moved).next_due())
        changed = {
            name: getattr(moved, name) for name in (*after, "next_due_on") if getattr(moved, name) != getattr(case, name)
        }
        await self.repository.update_case(case.id, changed)
        await self.repository.insert_transition(
            case_id=case.id,
            version=moved.version,
            action=request.action.value,
            from_state=source.value,
            to_state=target.value,
            actor_id=user.id,
            occurred_at=now,
            reason=request.reason,
            resolution=moved.resolution,
            assignee_id=assignee.id if assignee else None,
        )
        if request.action is Action.REFER:
            # Staff make the referral themselves; for a drill case it is only recorded.
            await ExternalEffects(self.session).happen(ExternalEffect.REFERRAL, case.id, case.drill_campaign_id, now)
        await self.audit.record(
            AuditAction.CASE_TRANSITION,
            now,
            user,
            case_id=case.id,
            action=request.action.value,
            from_state=source.value,
            to_state=target.value,
            version=moved.version,
            resolution=moved.resolution,
            assignee=assignee.username if assignee else None,
        )
        return CaseView(moved, await self._username(moved.assignee_id), deadlines(moved).overdue(today))

    async def _assignee(self, username: str | None) -> StaffUser:
        user = await self.repository.staff_by_username((username or "").strip().lower())
        if user is None or not user.is_active or user.role_enum is not Role.INVESTIGATOR:
            raise InvalidInput(f"`{username}` is not an active investigator's username.")
        return user

    async def _username(self, user_id: uuid.UUID | None) -> str | None:
        user = await self.repository.staff_user(user_id)
        return user.username if user else None

    # --- writing sealed content -----------------------------------------------------

    async def _require_key_holder(self, case: Row, user: StaffUser) -> None:
        if not await self.repository.staff_keys(case.id, user.id):
            raise NoContentKey(
                "You hold no key to this case, so nothing you seal could belong to it; ask a colleague who does for a grant."
            )

    async def add_message(
        self, user: StaffUser, case_id: uuid.UUID, message_id: uuid.UUID, sealed_body: bytes, now: datetime
    ) -> CaseMessage:
        case = await self.visible_case(user, case_id, lock=True)  # locked: message numbers stay unique
        refuse_if_purged(case.purged_on, "This case takes no more messages")
        await self._require_key_holder(case, user)
        taken = Conflict("A message with this id exists; seal the message again under a new id.")
        if await self.session.get(CaseMessage, message_id) is not None:
            raise taken
        message = CaseMessage(
            id=message_id,
            case_id=case.id,
            seq=await self.content.next_message_seq(case.id),
            author="staff",
            staff_user_id=user.id,
            sent_on=organisation_date(now, self.zone),
            sent_at=now,
            sealed_body=sealed_body,
            seal_format=crypto.MESSAGE_SEAL_FORMAT,  # the request's, checked by its schema
        )
        # Not added to the session: the row is inserted as it is, and this object only
        # carries it back to the caller.
        if not await self.content.insert_message(message):  # the same id sent for another case at the same moment
            raise taken
        if case.acknowledged_on is not None and case.feedback_given_on is None:
            given = dataclasses.replace(deadlines(case), feedback_given_on=message.sent_on)
            changes: dict[str, object] = {"feedback_given_on": message.sent_on}
            if given.next_due() != case.next_due_on:
                changes["next_due_on"] = given.next_due()
            await self.repository.update_case(case.id, changes)
        await self.audit.record(AuditAction.CASE_MESSAGE, now, user, case_id=case.id, message_id=str(message.id))
        return message

    async def grant(
        self,
        user: StaffUser,
        case_id: uuid.UUID,
        grantee_username: str,
        fingerprint: str,
        sealed_key: bytes,
        now: datetime,
    ) -> tuple[StaffUser, CaseKey]:
        case = await self.visible_case(user, case_id, lock=True)  # locked: its assignee and purge stay as checked
        refuse_if_purged(case.purged_on, "This case's key cannot be granted")
        await self._require_key_holder(case, user)
        grantee = await self.repository.staff_by_username(grantee_username.strip().lower())
        if grantee is None or not grantee.is_active:
            raise InvalidInput(f"No active staff account is named `{grantee_username}`.")
        if not may_see_case(grantee.role_enum, case.assignee_id == grantee.id):
            raise InvalidInput(
                f"`{grantee.username}` ({grantee.role}) may not read this case: grants go to triage, "
                "supervisors, and the investigator assigned to it."
            )
        if grantee.public_key_fingerprint is None:
            raise InvalidInput(f"`{grantee.username}` has not registered a public key yet.")
        if fingerprint != grantee.public_key_fingerprint:
            raise Conflict(
                f"`{grantee.username}`'s key is {grantee.public_key_fingerprint}, not {fingerprint}; "
                "fetch it again and re-seal.",
                current_fingerprint=grantee.public_key_fingerprint,
            )
        if await self.repository.key_for_fingerprint(case.id, fingerprint) is not None:
            raise Conflict(f"`{grantee.username}` already holds this case's key.")
        key = CaseKey(
            id=uuid.uuid4(),
            case_id=case.id,
            recipient_kind="staff",
            staff_user_id=grantee.id,
            recipient_fingerprint=fingerprint,
            sealed_key=sealed_key,
            granted_by_id=user.id,
            granted_at=now,
        )
        if not await self.repository.insert_key(key):  # a concurrent grant of the same key won
            raise Conflict(f"`{grantee.username}` already holds this case's key.")
        await self.audit.record(
            AuditAction.CASE_GRANT, now, user, case_id=case.id, grantee=grantee.username, fingerprint=fingerprint
        )
        return grantee, key

    # --- statistics ------------------------------------------------------------------

    async def stats(self, user: StaffUser, now: datetime) -> dict:
        if user.role_enum not in STATS_ROLES:
            raise Forbidden("Statistics are open to triage, supervisors, auditors and administrators.")
        today = organisation_date(now, self.zone)
        by_state, by_category = await self.repository.real_case_counts()
        compliance = await self.repository.real_deadline_compliance(today)
        return {
            "total": sum(by_state.values()),
            "by_state": {state.value: by_state.get(state.value, 0) for state in CaseState},
            "by_category": by_category,
            **compliance,
            "as_of": today,
        }
