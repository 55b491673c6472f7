"""The audit log and its head. Rows are only ever inserted: a trigger (see the migration)
refuses UPDATE, DELETE and TRUNCATE on `audit_log`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, LargeBinary, SmallInteger, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_case_id", "case_id", "seq"),
        Index("ix_audit_log_action", "action", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    # No foreign keys: the log outlives accounts, and drill cases that are purged.
    actor_id: Mapped[uuid.UUID | None]
    actor_username: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    case_id: Mapped[uuid.UUID | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    """The chain's last seq and hash, in one row whose lock serialises appends (and which
    reveals entries cut off the end of the chain)."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditWindowCount(Base):
    """Events counted per action and hour instead of logged one by one (failed logins for
    usernames that do not exist: anyone could otherwise grow the append-only log without
    bound). Each ended window becomes one entry in the chain and its row is deleted.
    Only the count is kept, never what was typed."""

    __tablename__ = "audit_window_counts"

    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
