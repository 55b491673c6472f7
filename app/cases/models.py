"""Cases and everything sealed that belongs to one.

A case row holds in the clear only what triage needs to route and time it (channel,
category, unit, state, the *date* of receipt, deadlines, the drill flag). Everything the
reporter wrote is ciphertext under the case's content key; `case_keys` holds that key
sealed to each reader. Reporter-side rows carry dates, never precise times.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey
from app.domain.intake import Channel, Language
from app.domain.triage import Action, CaseState, Resolution


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


STATE_CHECK = _in("state", [state.value for state in CaseState])
AUTHORS = ["reporter", "staff"]
RECIPIENT_KINDS = ["staff", "recovery", "reporter"]


class Case(UUIDPrimaryKey, Base):
    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(STATE_CHECK, name="state"),
        CheckConstraint(_in("channel", [channel.value for channel in Channel]), name="channel"),
        CheckConstraint(_in("language", [language.value for language in Language]), name="language"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("(idempotency_digest IS NULL) = (sealed_replay IS NULL)", name="replay_pairs"),
        CheckConstraint(_in("resolution", [resolution.value for resolution in Resolution]), name="resolution"),
        CheckConstraint("resolution IS NULL OR state = 'closed'", name="resolution_when_closed"),
        # Keyset pagination walks (received_on, id); each common filter gets its own walk
        # so that a rare value (one investigator's cases) is not found by scanning them all.
        Index("ix_cases_queue", "received_on", "id"),
        Index("ix_cases_state_queue", "state", "received_on", "id"),
        Index("ix_cases_category_queue", "category", "received_on", "id"),
        Index("ix_cases_assignee_queue", "assignee_id", "received_on", "id"),
        # Overdue is `next_due_on < today`, over the few cases still waiting for an act:
        # walked in queue order when many of them are overdue, by due date when few are.
        Index("ix_cases_waiting_queue", "received_on", "id", postgresql_where=text("next_due_on IS NOT NULL")),
        Index("ix_cases_next_due", "next_due_on", postgresql_where=text("next_due_on IS NOT NULL")),
        # The queue's `drill` filter walks what staff are shown, never the hidden flag.
        Index("ix_cases_drill_queue", "received_on", "id", postgresql_where=text("shown_as_drill")),
        # A drill case always belongs to a campaign, a real case never does; a trigger
        # (migration 3f1d2c4b5a60) refuses any later change of the three drill columns.
        CheckConstraint("is_drill = (drill_campaign_id IS NOT NULL)", name="drill_has_campaign"),
        CheckConstraint("is_drill OR NOT shown_as_drill", name="shown_as_drill_is_drill"),
        Index("ix_cases_drill_campaign_id", "drill_campaign_id", postgresql_where=text("is_drill")),
        # A purged case keeps its routing facts for statistics and nothing it was sent.
        CheckConstraint("(purged_on IS NULL) = (sealed_report IS NOT NULL)", name="purged_has_no_report"),
        CheckConstraint(
            "purged_on IS NULL OR (receipt_tag IS NULL AND reporter_public_key IS NULL AND state = 'closed')",
            name="purged_is_closed_and_unreachable",
        ),
        CheckConstraint("(closed_on IS NOT NULL) = (state = 'closed')", name="closed_on_when_closed"),
        # The retention job walks closed, unpurged cases by the date they closed.
        Index("ix_cases_retention", "closed_on", postgresql_where=text("closed_on IS NOT NULL AND purged_on IS NULL")),
    )

    channel: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64))
    org_unit: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    state: Mapped[str] = mapped_column(String(16), default=CaseState.RECEIVED.value)
    version: Mapped[int] = mapped_column(default=1)
    is_drill: Mapped[bool] = mapped_column(default=False, server_default="false")
    drill_campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("drill_campaigns.id", ondelete="RESTRICT")
    )
    # What staff see as the drill flag: true for an announced campaign's cases, false for
    # real cases and for a blind campaign's (purged at close, so never unmasked).
    shown_as_drill: Mapped[bool] = mapped_column(default=False, server_default="false")
    received_on: Mapped[date]
    acknowledge_due_on: Mapped[date]
    feedback_due_on: Mapped[date]
    # Dates, like received_on: the exact times of staff acts are in the history.
    acknowledged_on: Mapped[date | None]
    # The first staff message to the reporter after the acknowledgement (art. 9(1)(f)).
    feedback_given_on: Mapped[date | None]
    # Deadlines.next_due(), kept with the fields it derives from, so that "overdue" is
    # one indexed comparison instead of a walk over every open case.
    next_due_on: Mapped[date | None]
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    resolution: Mapped[str | None] = mapped_column(String(32))
    # The date the case last closed (cleared by a reopening): retention counts from it.
    closed_on: Mapped[date | None]
    # Set when retention deleted the content: the row stays for statistics, the receipt
    # opens nothing any more.
    purged_on: Mapped[date | None]

    receipt_scheme: Mapped[int] = mapped_column(SmallInteger)
    receipt_tag: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    reporter_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_report: Mapped[bytes | None] = mapped_column(LargeBinary)
    # SHA-256 of the proof-of-work challenge: the unique index makes a challenge single-use.
    pow_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    # Kept for a day or two, then cleared by the `cleanup.expired` job
    # (IntakeRepository.forget_retry_data).
    idempotency_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    sealed_replay: Mapped[bytes | None] = mapped_column(LargeBinary)


class CaseKey(UUIDPrimaryKey, Base):
    """The case's content key, HPKE-sealed to one reader."""

    __tablename__ = "case_keys"
    __table_args__ = (
        CheckConstraint(_in("recipient_kind", RECIPIENT_KINDS), name="recipient_kind"),
        CheckConstraint("(recipient_kind = 'staff') = (staff_user_id IS NOT NULL)", name="staff_has_user"),
        UniqueConstraint("case_id", "recipient_fingerprint", name="uq_case_keys_case_id_recipient"),
        Index("ix_case_keys_staff_user_id", "staff_user_id"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    recipient_fingerprint: Mapped[str] = mapped_column(String(39))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Set on grants (a staff member re-sealing the key for a colleague); intake's own
    # recipients have neither.
    granted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    granted_at: Mapped[datetime | None]


class CaseMessage(UUIDPrimaryKey, Base):
    __tablename__ = "case_messages"
    __table_args__ = (
        CheckConstraint(_in("author", AUTHORS), name="author"),
        CheckConstraint("(author = 'staff') = (staff_user_id IS NOT NULL)", name="staff_has_user"),
        # A reporter's message gets a date only; a staff message may carry its exact time.
        CheckConstraint("author = 'staff' OR sent_at IS NULL", name="reporter_time_coarse"),
        CheckConstraint("seal_format IN (1, 2)", name="seal_format"),
        UniqueConstraint("case_id", "seq", name="uq_case_messages_case_id_seq"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    seq: Mapped[int]
    author: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    sent_on: Mapped[date]
    sent_at: Mapped[datetime | None]
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    # The format the body is sealed in: readers open it in that format only, so a body
    # sealed without its author (format 1, before authors were bound) cannot pass for a
    # newer message. Rows from before the column existed are 1.
    seal_format: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))


class CaseAttachment(UUIDPrimaryKey, Base):
    __tablename__ = "case_attachments"
    __table_args__ = (
        CheckConstraint(_in("author", AUTHORS), name="author"),
        CheckConstraint("(author = 'staff') = (staff_user_id IS NOT NULL)", name="staff_has_user"),
        CheckConstraint("chunk_count >= 1 AND stored_bytes >= 0", name="sizes"),
        CheckConstraint("num_nonnulls(case_id, staging_case_id) = 1", name="published_or_staged"),
        CheckConstraint("(staging_case_id IS NULL) = (staged_on IS NULL)", name="staged_on_when_staged"),
        Index("ix_case_attachments_case_id", "case_id"),
        Index(
            "ix_case_attachments_staging_case_id",
            "staging_case_id",
            postgresql_where=text("staging_case_id IS NOT NULL"),
        ),
        Index("ix_case_attachments_staged_on", "staged_on", postgresql_where=text("staged_on IS NOT NULL")),
    )

    # Set when the upload is published whole; every query of a case's attachments goes by it.
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # While the file streams in, its row and chunks belong to the case only through this
    # column, invisible to every reader (see app/cases/attachment_store.py).
    staging_case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # A date, like every reporter-side row: staging from before yesterday was abandoned.
    staged_on: Mapped[date | None]
    author: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    uploaded_on: Mapped[date]
    # Bytes of ciphertext, which a dump shows anyway; the exact size is in the sealed
    # metadata, and the padded last chunk keeps it from showing through.
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_bytes: Mapped[int]
    chunk_count: Mapped[int]
    # Filename, media type and exact size, sealed like the content.
    sealed_meta: Mapped[bytes] = mapped_column(LargeBinary)


class AttachmentChunk(Base):
    __tablename__ = "attachment_chunks"

    attachment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("case_attachments.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class CaseTransition(UUIDPrimaryKey, Base):
    """One step of a case's history, written in the transaction that took it."""

    __tablename__ = "case_transitions"
    __table_args__ = (
        CheckConstraint(_in("action", [action.value for action in Action]), name="action"),
        CheckConstraint(_in("from_state", [state.value for state in CaseState]), name="from_state"),
        CheckConstraint(_in("to_state", [state.value for state in CaseState]), name="to_state"),
        # The version the step produced: unique per case, so two writers cannot both
        # record "version 3" even if the row lock were bypassed.
        UniqueConstraint("case_id", "version", name="uq_case_transitions_case_id_version"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    version: Mapped[int]
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    occurred_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(String(32))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))


class DeadlineNotice(Base):
    """A reminder or escalation sent for one deadline of one case: the primary key lets
    exactly one of several workers send it, however often the job runs."""

    __tablename__ = "deadline_notices"
    __table_args__ = (
        CheckConstraint(_in("deadline", ["acknowledge", "feedback"]), name="deadline"),
        CheckConstraint(_in("notice", ["reminder", "missed"]), name="notice"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    deadline: Mapped[str] = mapped_column(String(16), primary_key=True)
    due_on: Mapped[date] = mapped_column(primary_key=True)
    notice: Mapped[str] = mapped_column(String(8), primary_key=True)
    sent_on: Mapped[date]
