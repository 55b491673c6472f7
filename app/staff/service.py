"""Staff accounts and login: creation, password login with a shared throttle, tokens."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.errors import (
    Conflict,
    DomainError,
    InvalidCredentials,
    NotAuthenticated,
    NotFound,
    TooManyAttempts,
)
from app.domain.staff import (
    MAXIMUM_PASSWORD_LENGTH,
    PasswordHashing,
    Role,
    check_password_strength,
    normalize_username,
)
from app.domain.throttle import LoginThrottlePolicy
from app.domain.tokens import new_staff_token, token_digest
from app.settings import Settings
from app.staff.models import StaffToken, StaffUser
from app.staff.repository import StaffRepository


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: StaffUser


@dataclass(frozen=True)
class LoginRefused:
    """A refused login is returned, not raised: its bookkeeping (the failure count and
    lock) must be committed, and the request's session rolls back on exceptions."""

    error: DomainError


class StaffService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        hashing: PasswordHashing,
        secret_key: bytes,
        token_ttl: timedelta,
        throttle: LoginThrottlePolicy,
    ):
        self.repository = StaffRepository(session)
        self.session = session
        self.hashing = hashing
        self.secret_key = secret_key
        self.token_ttl = token_ttl
        self.throttle = throttle

    @classmethod
    def from_settings(
        cls, session: AsyncSession, settings: Settings, hashing: PasswordHashing
    ) -> StaffService:
        return cls(
            session,
            hashing=hashing,
            secret_key=settings.secret_key_bytes,
            token_ttl=timedelta(minutes=settings.auth.token_ttl_minutes),
            throttle=settings.auth.throttle_policy,
        )

    async def create_user(self, username: str, role: Role, password: str) -> StaffUser:
        username = normalize_username(username)
        check_password_strength(password, username)
        if await self.repository.user_by_username(username) is not None:
            raise Conflict(f"A staff account named {username!r} already exists.")
        password_hash = await asyncio.to_thread(self.hashing.hash, password)
        user = StaffUser(username=username, role=role.value, password_hash=password_hash)
        try:
            async with self.session.begin_nested():
                await self.repository.add(user)
        except IntegrityError as error:  # lost a race with a concurrent creation
            raise Conflict(f"A staff account named {username!r} already exists.") from error
        return user

    async def login(self, username: str, password: str, now: datetime) -> IssuedToken | LoginRefused:
        invalid = LoginRefused(InvalidCredentials("The username or password is wrong."))
        if len(password) > MAXIMUM_PASSWORD_LENGTH:
            return invalid
        try:
            username = normalize_username(username)
        except DomainError:
            await asyncio.to_thread(self.hashing.burn_time, password)
            return invalid

        user = await self.repository.user_by_username(username, lock=True)
        if user is None or not user.is_active:
            await asyncio.to_thread(self.hashing.burn_time, password)
            return invalid

        if user.locked_until is not None and user.locked_until > now:
            retry_after = math.ceil((user.locked_until - now).total_seconds())
            return LoginRefused(
                TooManyAttempts(
                    "This account is locked for a while after repeated failed logins.",
                    retry_after_seconds=retry_after,
                )
            )

        if not await asyncio.to_thread(self.hashing.verify, user.password_hash, password):
            user.failed_login_count += 1
            user.locked_until = self.throttle.locked_until(user.failed_login_count, now)
            await self.session.flush()
            return invalid

        user.failed_login_count = 0
        user.locked_until = None
        if self.hashing.needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(self.hashing.hash, password)
        return await self._issue_token(user, now)

    async def _issue_token(self, user: StaffUser, now: datetime) -> IssuedToken:
        token = new_staff_token()
        expires_at = now + self.token_ttl
        await self.repository.add(
            StaffToken(
                user_id=user.id,
                digest=token_digest(self.secret_key, token),
                created_at=now,
                expires_at=expires_at,
            )
        )
        return IssuedToken(token=token, expires_at=expires_at, user=user)

    async def authenticate(self, token: str | None, now: datetime) -> StaffToken:
        if not token:
            raise NotAuthenticated("This endpoint needs a staff bearer token.")
        live = await self.repository.live_token(token_digest(self.secret_key, token), now)
        if live is None:
            raise NotAuthenticated("The token is unknown, expired or revoked; log in again.")
        return live

    async def revoke(self, token: StaffToken, now: datetime) -> None:
        token.revoked_at = now
        await self.session.flush()

    async def deactivate(self, user_id: uuid.UUID, acting_user: StaffUser, now: datetime) -> StaffUser:
        user = await self.repository.user_by_id(user_id)
        if user is None:
            raise NotFound("No staff account has this id.")
        if user.id == acting_user.id:
            raise Conflict("An administrator cannot deactivate their own account.")
        user.is_active = False
        await self.repository.revoke_tokens_of(user.id, now)
        await self.session.flush()
        return user

    async def users(self) -> Sequence[StaffUser]:
        return await self.repository.users()
