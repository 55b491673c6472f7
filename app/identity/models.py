"""A reporter's identity, the keys that open it, and requests to learn it.

The identity is sealed under its own key (`case_identities`); `identity_keys` holds that
key sealed to each holder: the reporter, the recovery key, the custodians at intake, and
a requester once a custodian released it. No content key opens it. The CHECKs below
restate the rule that one account never takes two parts in a release, so that even a
bug in the service (or SQL typed by hand) cannot record one.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey
from app.domain.identity import OPEN_STATUSES, ReleaseBasis, ReporterAnswer, RequestStatus


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


KEY_HOLDERS = ["reporter", "recovery", "custodian", "requester"]
OPEN_STATUS_CHECK = _in("status", sorted(status.value for status in OPEN_STATUSES))


class CaseIdentity(Base):
    __tablename__ = "case_identities"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    sealed_identity: Mapped[bytes] = mapped_column(LargeBinary)


class IdentityKey(UUIDPrimaryKey, Base):
    """The identity key, HPKE-sealed to one holder."""

    __tablename__ = "identity_keys"
    __table_args__ = (
        CheckConstraint(_in("holder_kind", KEY_HOLDERS), name="holder_kind"),
        CheckConstraint(
            "(holder_kind IN ('custodian', 'requester')) = (staff_user_id IS NOT NULL)", name="staff_holder_named"
        ),
        CheckConstraint("(holder_kind = 'requester') = (request_id IS NOT NULL)", name="released_by_request"),
        UniqueConstraint("case_id", "recipient_fingerprint", name="uq_identity_keys_case_id_recipient"),
        Index("ix_identity_keys_staff_user_id", "staff_user_id"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    holder_kind: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    recipient_fingerprint: Mapped[str] = mapped_column(String(39))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("identity_requests.id", ondelete="CASCADE"))


class IdentityRequest(UUIDPrimaryKey, Base):
    """A staff member's written request to learn a case's identity, and what became of it."""

    __tablename__ = "identity_requests"
    __table_args__ = (
        CheckConstraint(_in("status", [status.value for status in RequestStatus]), name="status"),
        CheckConstraint(_in("reporter_answer", [answer.value for answer in ReporterAnswer]), name="reporter_answer"),
        CheckConstraint(_in("basis", [basis.value for basis in ReleaseBasis]), name="basis"),
        CheckConstraint("(reporter_answer IS NULL) = (reporter_answered_on IS NULL)", name="answer_dated"),
        CheckConstraint(
            "(approver_id IS NULL) = (legal_ground IS NULL) AND (approver_id IS NULL) = (approved_at IS NULL)",
            name="approval_complete",
        ),
        CheckConstraint(
            "(status = 'released') = (custodian_id IS NOT NULL AND released_at IS NOT NULL AND basis IS NOT NULL)",
            name="release_complete",
        ),
        # Two people, never one: the approver is not the requester; the custodian is neither.
        CheckConstraint("approver_id <> requester_id", name="approver_not_requester"),
        CheckConstraint(
            "custodian_id IS NULL OR (custodian_id <> requester_id AND custodian_id IS DISTINCT FROM approver_id)", name="custodian_apart"
        ),
        CheckConstraint("basis <> 'legal_obligation' OR approver_id IS NOT NULL", name="legal_basis_approved"),
        # IS [NOT] DISTINCT FROM: a CHECK passes when it evaluates to NULL, so a plain `=`
        # would let a consent release through with no answer at all.
        CheckConstraint(
            "basis IS DISTINCT FROM 'consent' OR reporter_answer IS NOT DISTINCT FROM 'consent'",
            name="consent_basis_consented",
        ),
        CheckConstraint(
            "(status <> 'consented' OR reporter_answer IS NOT DISTINCT FROM 'consent') "
            "AND (status <> 'declined' OR reporter_answer IS NOT DISTINCT FROM 'decline')",
            name="status_is_the_answer",
        ),
        CheckConstraint("status <> 'approved' OR approver_id IS NOT NULL", name="approved_has_approver"),
        CheckConstraint(
            "(status = 'withdrawn') = (withdrawn_by_id IS NOT NULL AND withdrawn_at IS NOT NULL)",
            name="withdrawal_complete",
        ),
        CheckConstraint("approver_id IS NOT NULL OR NOT notice_withheld", name="withheld_by_approver"),
        CheckConstraint("notice_withheld OR withheld_reason IS NULL", name="withheld_reason_when_withheld"),
        # One open request per person and case: a second one would only duplicate the first.
        Index(
            "uq_identity_requests_open_per_requester",
            "case_id",
            "requester_id",
            unique=True,
            postgresql_where=text(OPEN_STATUS_CHECK),
        ),
        Index("ix_identity_requests_case_id", "case_id"),
        Index("ix_identity_requests_open", "status", postgresql_where=text(OPEN_STATUS_CHECK)),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING.value)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    requested_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    # The reporter's side carries a date only, like every reporter-side record.
    reporter_answer: Mapped[str | None] = mapped_column(String(16))
    reporter_answered_on: Mapped[date | None]
    approver_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    approved_at: Mapped[datetime | None]
    legal_ground: Mapped[str | None] = mapped_column(Text)
    # Set by the approver when telling the reporter would jeopardise the investigation.
    notice_withheld: Mapped[bool] = mapped_column(default=False, server_default="false")
    withheld_reason: Mapped[str | None] = mapped_column(Text)
    notice_lifted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    notice_lifted_at: Mapped[datetime | None]
    custodian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    released_at: Mapped[datetime | None]
    basis: Mapped[str | None] = mapped_column(String(24))
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    withdrawn_at: Mapped[datetime | None]
