from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Installation(Base):
    """One row, made by the migration: per-installation values that are not secret."""

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # Salt of the receipt Argon2id: a precomputed table of receipts is good for one
    # installation only. Not secret, and never changed (every lookup tag depends on it).
    receipt_salt: Mapped[bytes] = mapped_column(LargeBinary(16))


class IntakeBudget(Base):
    """Counters shared by every replica, one row per kind and time window, and nothing
    about who was counted. Rows of ended windows are deleted by the `cleanup.expired` job
    (every quarter of an hour), whether or not anyone came since."""

    __tablename__ = "intake_budgets"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(default=0)
