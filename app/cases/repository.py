"""Queries of cases: the staff case API's (`CaseRepository`), a case's sealed content,
shared by the staff API and the reporter's mailbox (`CaseContentRepository`), and the
retention job's (`RetentionRepository`). Flushes at most; never commits."""

from __future__ import annotations

import uuid
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage, CaseTransition
from app.domain.identity import OPEN_STATUSES
from app.domain.retention import Outcome, RetentionPolicy, resolutions_of
from app.domain.triage import CaseState, Resolution
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from app.staff.models import StaffUser


@dataclass(frozen=True)
class CaseFilters:
    state: CaseState | None = None
    category: str | None = None
    channel: str | None = None
    overdue: bool | None = None
    assignee_id: uuid.UUID | None = None
    drill: bool | None = None


@dataclass(frozen=True)
class QueuePosition:
    """Where a page ended: the queue is ordered by (received_on, id)."""

    received_on: date
    id: uuid.UUID


def real_cases() -> ColumnElement[bool]:
    """The one definition of the cases that count: statistics, deadline compliance and
    every export or dashboard filter by it, so a drill case is never counted."""
    return Case.is_drill.is_(False)


def overdue_condition(today: date) -> ColumnElement[bool]:
    """`triage.Deadlines.overdue` over the stored `next_due_on`."""
    return Case.__table__.c.next_due_on < today


# The statements every case view runs, built once with bound parameters: building a
# statement costs more Python than running a compiled one from SQLAlchemy's cache.
_IDENTITY_FLAGS = select(
    exists().where(CaseIdentity.case_id == bindparam("case_id")),
    exists().where(
        IdentityKey.case_id == bindparam("case_id"),
        IdentityKey.staff_user_id == bindparam("user_id"),
        IdentityKey.holder_kind == "requester",
    ),
)
_ACTOR = StaffUser.__table__.alias("actor")
_ASSIGNEE = StaffUser.__table__.alias("assignee")
_HISTORY = (
    select(CaseTransition, _ACTOR.c.username, _ACTOR.c.role, _ASSIGNEE.c.username)
    .join(_ACTOR, _ACTOR.c.id == CaseTransition.actor_id)
    .outerjoin(_ASSIGNEE, _ASSIGNEE.c.id == CaseTransition.assignee_id)
    .where(CaseTransition.case_id == bindparam("case_id"))
    .order_by(CaseTransition.version)
)
_STAFF_BY_USERNAME = select(StaffUser).where(StaffUser.username == bindparam("username"))
_KEY_FOR_FINGERPRINT = select(CaseKey).where(
    CaseKey.case_id == bindparam("case_id"), CaseKey.recipient_fingerprint == bindparam("fingerprint")
)
_LAST_MESSAGE_SEQ = select(func.max(CaseMessage.seq)).where(CaseMessage.case_id == bindparam("case_id"))
# Appends of one row that may lose a race (the same message id, a second grant to the same
# key): the loser inserts nothing and is told so, with no savepoint to open and release.
_INSERT_KEY_COLUMNS = (
    "case_id", "recipient_kind", "staff_user_id", "recipient_fingerprint", "sealed_key", "granted_by_id", "granted_at", "id",
)
_INSERT_KEY = (
    insert(CaseKey.__table__)
    .values({name: bindparam(name) for name in _INSERT_KEY_COLUMNS})
    .on_conflict_do_nothing()
    .returning(CaseKey.__table__.c.id)
)
_INSERT_MESSAGE_COLUMNS = (
    "case_id", "seq", "author", "staff_user_id", "sent_on", "sent_at", "sealed_body", "seal_format", "id",
)
_INSERT_MESSAGE = (
    insert(CaseMessage.__table__)
    .values({name: bindparam(name) for name in _INSERT_MESSAGE_COLUMNS})
    .on_conflict_do_nothing()
    .returning(CaseMessage.__table__.c.id)
)
# Keys, messages and attachments are read as rows (attributes as on the entities): a case
# view only shows them, and rows cost a fraction of loading objects.
_KEYS_TABLE, _MESSAGES_TABLE, _ATTACHMENTS_TABLE = CaseKey.__table__, CaseMessage.__table__, CaseAttachment.__table__
_STAFF_KEYS = select(*_KEYS_TABLE.columns).where(
    _KEYS_TABLE.c.case_id == bindparam("case_id"), _KEYS_TABLE.c.staff_user_id == bindparam("user_id")
)
_MESSAGES = (
    select(*_MESSAGES_TABLE.columns)
    .where(_MESSAGES_TABLE.c.case_id == bindparam("case_id"))
    .order_by(_MESSAGES_TABLE.c.seq)
)
_ATTACHMENTS = (
    select(*_ATTACHMENTS_TABLE.columns)
    .where(_ATTACHMENTS_TABLE.c.case_id == bindparam("case_id"))
    .order_by(_ATTACHMENTS_TABLE.c.uploaded_on, _ATTACHMENTS_TABLE.c.id)
)


# The queue reads rows, not entities: a page of 50 cases loaded as objects costs more
# Python than the query. A row holds what a queue item shows and its deadlines need, and
# nothing sealed or hidden (not the drill flag staff are not shown, not the ciphertexts).
QUEUE_COLUMNS = (
    "id", "state", "version", "channel", "category", "org_unit", "language", "shown_as_drill", "received_on",
    "acknowledge_due_on", "acknowledged_on", "feedback_due_on", "feedback_given_on", "resolution", "purged_on",
)
# A page's rows become named tuples: reading an attribute of one costs a fraction of
# reading it from a SQLAlchemy Row, and a page reads about twenty of each of 50 rows.
QueueRow = namedtuple("QueueRow", (*QUEUE_COLUMNS, "assignee_username"))
_CASES = Case.__table__.c
_CASE_ROW = select(*Case.__table__.columns).where(_CASES.id == bindparam("case_id"))
_CASE_ROW_FOR_UPDATE = _CASE_ROW.with_for_update()
# A case as a transition leaves it: its row with the changes applied.
CaseRecord = namedtuple("CaseRecord", [column.name for column in Case.__table__.columns])
_TRANSITIONS_TABLE = CaseTransition.__table__
_INSERT_TRANSITION_COLUMNS = (
    "case_id", "version", "action", "from_state", "to_state", "actor_id", "occurred_at", "reason", "resolution",
    "assignee_id", "id",
)
_INSERT_TRANSITION = insert(_TRANSITIONS_TABLE).values(
    {name: bindparam(name) for name in _INSERT_TRANSITION_COLUMNS}
)
_QUEUE = (
    select(*(_CASES[name] for name in QUEUE_COLUMNS), StaffUser.__table__.c.username.label("assignee_username"))
    .select_from(Case.__table__.outerjoin(StaffUser.__table__, StaffUser.__table__.c.id == _CASES.assignee_id))
    .order_by(_CASES.received_on, _CASES.id)
)


class CaseRepository:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def identity_flags(self, case_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, bool]:
        """Whether the case has an identity sealed apart, and whether it was released to this user."""
        row = (await self.session.execute(_IDENTITY_FLAGS, {"case_id": case_id, "user_id": user_id})).one()
        return {"identified": bool(row[0]), "identity_released_to_you": bool(row[1])}

    async def case_row(self, case_id: uuid.UUID, *, lock: bool = False) -> Row | None:
        """The case as a row (its attributes as on the entity), not to be changed through
        the ORM; with `lock`, its row stays locked until the transaction ends."""
        statement = _CASE_ROW_FOR_UPDATE if lock else _CASE_ROW
        return (await self.session.execute(statement, {"case_id": case_id})).one_or_none()

    async def insert_transition(self, **values: object) -> None:
        """One step of a case's history (the case row locked by the caller, so its
        version is the next one)."""
        await self.session.execute(_INSERT_TRANSITION, {**values, "id": uuid.uuid4()})

    async def update_case(self, case_id: uuid.UUID, changes: dict[str, object]) -> None:
        """Set these columns of a case read as a row (nothing when there is no change)."""
        if changes:
            await self.session.execute(update(Case.__table__).where(_CASES.id == case_id).values(changes))

    async def queue(
        self, filters: CaseFilters, after: QueuePosition | None, limit: int, today: date
    ) -> list[QueueRow]:
        """One page of the queue, oldest first.

        Keyset pagination: the next page starts strictly after the last (received_on, id)
        seen, so a page costs the same at the millionth case as at the first, and cases
        arriving meanwhile neither repeat nor vanish."""
        query = _QUEUE.limit(limit)
        if after is not None:
            query = query.where(tuple_(_CASES.received_on, _CASES.id) > tuple_(after.received_on, after.id))
        if filters.state is not None:
            query = query.where(_CASES.state == filters.state.value)
        if filters.category is not None:
            query = query.where(_CASES.category == filters.category)
        if filters.channel is not None:
            query = query.where(_CASES.channel == filters.channel)
        if filters.assignee_id is not None:
            query = query.where(_CASES.assignee_id == filters.assignee_id)
        if filters.drill is not None:
            # What staff are shown, never the hidden flag: a blind drill's case is found
            # with the real ones. `= true`, not `IS true`, matches the partial index.
            query = query.where(_CASES.shown_as_drill == filters.drill)
        if filters.overdue is True:
            # The IS NOT NULL is implied, but spelled out it lets the planner match the
            # partial index of waiting cases.
            query = query.where(_CASES.next_due_on.is_not(None), overdue_condition(today))
        elif filters.overdue is False:
            query = query.where(or_(_CASES.next_due_on.is_(None), not_(overdue_condition(today))))
        return [QueueRow._make(row) for row in await self.session.execute(query)]

    async def staff_user(self, user_id: uuid.UUID | None) -> StaffUser | None:
        return None if user_id is None else await self.session.get(StaffUser, user_id)

    async def staff_by_username(self, username: str) -> StaffUser | None:
        return await self.session.scalar(_STAFF_BY_USERNAME, {"username": username})

    async def staff_keys(self, case_id: uuid.UUID, user_id: uuid.UUID) -> Sequence[Row]:
        """Rows of the keys sealed to this account for this case."""
        return (await self.session.execute(_STAFF_KEYS, {"case_id": case_id, "user_id": user_id})).all()

    async def key_for_fingerprint(self, case_id: uuid.UUID, fingerprint: str) -> CaseKey | None:
        return await self.session.scalar(_KEY_FOR_FINGERPRINT, {"case_id": case_id, "fingerprint": fingerprint})

    async def insert_key(self, key: CaseKey) -> bool:
        """Store a grant (with its id set); False when the case already has a key under
        this fingerprint (a concurrent grant won), and nothing was written."""
        values = {name: getattr(key, name) for name in _INSERT_KEY_COLUMNS}
        return await self.session.scalar(_INSERT_KEY, values) is not None

    async def history(self, case_id: uuid.UUID) -> Sequence[tuple[CaseTransition, str, str, str | None]]:
        return [tuple(row) for row in (await self.session.execute(_HISTORY, {"case_id": case_id})).all()]

    async def usernames(self, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not user_ids:
            return {}
        rows = await self.session.execute(select(StaffUser.id, StaffUser.username).where(StaffUser.id.in_(user_ids)))
        return {row.id: row.username for row in rows}

    async def real_case_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        real = real_cases()
        by_state = await self.session.execute(select(Case.state, func.count()).where(real).group_by(Case.state))
        by_category = await self.session.execute(
            select(Case.category, func.count()).where(real).group_by(Case.category)
        )
        return {state: count for state, count in by_state}, {category: count for category, count in by_category}

    async def real_deadline_compliance(self, today: date) -> dict[str, dict[str, int]]:
        """Counts of met / late / missed / pending for both deadlines, in one scan."""

        def outcome(done_on, due_on) -> ColumnElement[str]:
            return case(
                (done_on.is_not(None) & (done_on <= due_on), "met"),
                (done_on.is_not(None), "late"),
                (due_on < today, "missed"),
                else_="pending",
            )

        acknowledgement = outcome(Case.acknowledged_on, Case.acknowledge_due_on).label("acknowledgement")
        feedback = outcome(Case.feedback_given_on, Case.feedback_due_on).label("feedback")
        rows = await self.session.execute(
            select(acknowledgement, feedback, func.count())
            .where(real_cases())
            .group_by(acknowledgement, feedback)
        )
        totals: dict[str, dict[str, int]] = {
            "acknowledgement": dict.fromkeys(("met", "late", "missed", "pending"), 0),
            "feedback": dict.fromkeys(("met", "late", "missed", "pending"), 0),
        }
        for acknowledgement_outcome, feedback_outcome, count in rows:
            totals["acknowledgement"][acknowledgement_outcome] += count
            totals["feedback"][feedback_outcome] += count
        return totals


class CaseContentRepository:
    """A case's sealed content: messages, attachments and their chunks, the reporter's
    sealed key. Used by the staff case API and by the reporter's mailbox."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def reporter_key(self, case_id: uuid.UUID) -> CaseKey | None:
        return await self.session.scalar(
            select(CaseKey).where(CaseKey.case_id == case_id, CaseKey.recipient_kind == "reporter")
        )

    async def messages(self, case_id: uuid.UUID) -> Sequence[Row]:
        """Rows of the case's messages, in order."""
        return (await self.session.execute(_MESSAGES, {"case_id": case_id})).all()

    async def next_message_seq(self, case_id: uuid.UUID) -> int:
        """Call with the case row locked, so two messages cannot take the same number."""
        last = await self.session.scalar(_LAST_MESSAGE_SEQ, {"case_id": case_id})
        return (last or 0) + 1

    async def insert_message(self, message: CaseMessage) -> bool:
        """Store a message (with its id set); False when its id is taken (sent for another
        case at the same moment), and nothing was written."""
        values = {name: getattr(message, name) for name in _INSERT_MESSAGE_COLUMNS}
        return await self.session.scalar(_INSERT_MESSAGE, values) is not None

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def attachments(self, case_id: uuid.UUID) -> Sequence[Row]:
        """Rows of the case's attachments, oldest first."""
        return (await self.session.execute(_ATTACHMENTS, {"case_id": case_id})).all()

    async def attachment(self, case_id: uuid.UUID, attachment_id: uuid.UUID) -> CaseAttachment | None:
        return await self.session.scalar(
            select(CaseAttachment).where(CaseAttachment.id == attachment_id, CaseAttachment.case_id == case_id)
        )


def resolution_in(resolutions: list[Resolution | None]) -> ColumnElement[bool]:
    named = [resolution.value for resolution in resolutions if resolution is not None]
    conditions = [Case.resolution.in_(named)] if named else []
    if None in resolutions:
        conditions.append(Case.resolution.is_(None))
    return or_(*conditions)


def identity_work_pending(case_id: ColumnElement) -> ColumnElement[bool]:
    """A request to learn the reporter's identity still open (it may yet be released), or
    released with the reporter not yet told of the legal decision (they must be, once it
    no longer jeopardises the investigation): the case is held until that is settled."""
    return exists().where(
        IdentityRequest.case_id == case_id,
        or_(
            IdentityRequest.status.in_([status.value for status in OPEN_STATUSES]),
            and_(IdentityRequest.notice_withheld.is_(True), IdentityRequest.notice_lifted_at.is_(None)),
        ),
    )


def due_for_purge(policy: RetentionPolicy, today: date) -> ColumnElement[bool]:
    """`RetentionPolicy.is_due` over the stored columns, for real, closed, unpurged cases:
    drill cases go when their campaign closes, never by retention; a case with identity
    work pending waits for it."""
    return and_(
        real_cases(),
        Case.state == CaseState.CLOSED.value,
        Case.purged_on.is_(None),
        Case.closed_on.is_not(None),
        not_(identity_work_pending(Case.id)),
        or_(
            *(
                and_(resolution_in(resolutions_of(outcome)), Case.closed_on <= policy.closed_on_or_before(outcome, today))
                for outcome in Outcome
            )
        ),
    )


class RetentionRepository:
    """The retention job's queries: which cases are due, and deleting one's content."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def due_case_ids(self, policy: RetentionPolicy, today: date, limit: int) -> list[uuid.UUID]:
        """Unlocked, so only a list of candidates: each is locked and checked again."""
        return list(
            await self.session.scalars(
                select(Case.id).where(due_for_purge(policy, today)).order_by(Case.closed_on, Case.id).limit(limit)
            )
        )

    async def lock_unless_busy(self, case_id: uuid.UUID) -> Case | None:
        """The case, locked; None when someone holds its lock (a staff act, the reporter,
        another run): retention does not wait, the next run takes it."""
        return await self.session.scalar(
            select(Case).where(Case.id == case_id).with_for_update(skip_locked=True).execution_options(
                populate_existing=True
            )
        )

    async def identity_work_pending(self, case_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(identity_work_pending(literal(case_id)))))

    async def held_for_identity_count(self, policy: RetentionPolicy, today: date) -> int:
        """Cases that would be due but for pending identity work."""
        due_but_held = and_(
            real_cases(),
            Case.state == CaseState.CLOSED.value,
            Case.purged_on.is_(None),
            Case.closed_on.is_not(None),
            identity_work_pending(Case.id),
        )
        candidates = (await self.session.execute(select(Case.closed_on, Case.resolution).where(due_but_held))).all()
        return sum(1 for closed_on, resolution in candidates if policy.is_due(closed_on, resolution, today))

    async def delete_content(self, case_id: uuid.UUID) -> dict[str, int]:
        """Deletes everything sealed that hangs off the case (messages, attachments published
        or staging and their chunks, content keys, the sealed identity, its keys and the
        requests for it); returns how many rows of each. Call with the case row locked."""
        attachments = select(CaseAttachment.id).where(
            or_(CaseAttachment.case_id == case_id, CaseAttachment.staging_case_id == case_id)
        )
        # Counted, then removed by the attachments' cascade: attachment rows before their
        # chunks is the order the cleanup job locks them in, so the two cannot deadlock.
        deleted: dict[str, int] = {
            "attachment_chunks": await self.session.scalar(
                select(func.count()).where(AttachmentChunk.attachment_id.in_(attachments))
            )
            or 0
        }
        for name, statement in (
            (
                "attachments",
                delete(CaseAttachment).where(
                    or_(CaseAttachment.case_id == case_id, CaseAttachment.staging_case_id == case_id)
                ),
            ),
            ("messages", delete(CaseMessage).where(CaseMessage.case_id == case_id)),
            ("content_keys", delete(CaseKey).where(CaseKey.case_id == case_id)),
            # Keys first: a released key points at its request.
            ("identity_keys", delete(IdentityKey).where(IdentityKey.case_id == case_id)),
            ("identity_requests", delete(IdentityRequest).where(IdentityRequest.case_id == case_id)),
            ("identities", delete(CaseIdentity).where(CaseIdentity.case_id == case_id)),
        ):
            # No session objects to keep in step: only the locked case row is loaded.
            result = await self.session.execute(statement.execution_options(synchronize_session=False))
            deleted[name] = result.rowcount or 0
        return deleted
