from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, Timestamps, UUIDPrimaryKey
from app.domain.staff import Role

ROLE_VALUES = ", ".join(f"'{role.value}'" for role in Role)


class StaffUser(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint(f"role IN ({ROLE_VALUES})", name="role"),
        CheckConstraint(
            "NOT is_identity_custodian OR role NOT IN ('drill_coordinator', 'admin')", name="custodian_role"
        ),
    )

    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    # Login throttle state lives here, in PostgreSQL, so every replica sees the same lock.
    failed_login_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_failed_login_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    # The public half of the key pair the staff member made on their own machine; the
    # private half never reaches the server.
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Unique: an officer registering a colleague's public key would otherwise take that
    # colleague's place among a case's recipients.
    public_key_fingerprint: Mapped[str | None] = mapped_column(String(39), unique=True)
    public_key_registered_at: Mapped[datetime | None]
    # Set by an administrator: new reports' identity keys are sealed to every active
    # custodian with a registered key. A flag, not a role, so that any of the six roles
    # (but a drill coordinator) can also hold identities in trust.
    is_identity_custodian: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Where content-free notices go (new reports, deadlines); none means no e-mail.
    email: Mapped[str | None] = mapped_column(String(320))

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class StaffToken(UUIDPrimaryKey, Base):
    """A bearer token. Only its HMAC is stored: a database dump yields no usable token."""

    __tablename__ = "staff_tokens"
    __table_args__ = (Index("ix_staff_tokens_user_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[StaffUser] = relationship(lazy="joined")
