"""Staff accounts and login: creation, password login with a shared throttle, tokens."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditLog
from app.context import AppContext, Service
from app.domain.audit import AuditAction
from app.domain.crypto import PublicKey
from app.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    TooManyAttempts,
)
from app.domain.identity import CUSTODIAN_ROLES
from app.domain.staff import (
    MAXIMUM_PASSWORD_LENGTH,
    Role,
    check_password_strength,
    normalize_email,
    normalize_username,
)
from app.domain.tokens import new_staff_token, token_digest
from app.staff.models import StaffToken, StaffUser
from app.staff.repository import StaffRepository


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: StaffUser


@dataclass(frozen=True)
class LoginRefused:
    """A refused login is returned, not raised, so that the endpoint can answer with a
    problem while nothing it did is rolled back."""

    error: DomainError


@dataclass(frozen=True)
class _Account:
    """Who an attempt was for, as the audit log names them."""

    id: uuid.UUID
    username: str
    role: str


@dataclass(frozen=True)
class _Reserved:
    user_id: uuid.UUID
    password_hash: str
    account: _Account


@dataclass(frozen=True)
class _Locked:
    retry_after_seconds: int
    account: _Account


@dataclass(frozen=True)
class _NoSuchAccount:
    """No account that may log in: unknown (only counted per hour in the audit log, and
    never named, since people type passwords into the username field) or deactivated
    (named for the first refusal after deactivation, then counted per hour)."""

    account: _Account | None
    reason: str
    named: bool = False


class StaffService(Service):
    def __init__(self, session: AsyncSession, context: AppContext):
        super().__init__(session, context)
        self.repository = StaffRepository(session)
        self.audit = AuditLog(session)
        self.hashing = context.password_hashing
        self.cpu = context.login_cpu
        self.secret_key = self.settings.secret_key_bytes
        self.token_ttl = timedelta(minutes=self.settings.auth.token_ttl_minutes)
        self.throttle = self.settings.auth.throttle_policy

    async def create_user(
        self,
        username: str,
        role: Role,
        password: str,
        *,
        actor: StaffUser | None,
        now: datetime,
        email: str | None = None,
    ) -> StaffUser:
        """`actor` is None when the operator runs `cleanwindow users create`."""
        username = normalize_username(username)
        email = normalize_email(email) if email is not None else None
        check_password_strength(password, username)
        # Hash before the first query: no connection is held while waiting for the budget.
        password_hash = await self.cpu.run(self.hashing.hash, password)
        if await self.repository.user_by_username(username) is not None:
            raise Conflict(f"A staff account named {username!r} already exists.")
        user = StaffUser(username=username, role=role.value, password_hash=password_hash, email=email)
        try:
            async with self.session.begin_nested():
                await self.repository.add(user)
        except IntegrityError as error:  # lost a race with a concurrent creation
            raise Conflict(f"A staff account named {username!r} already exists.") from error
        await self.audit.record(AuditAction.USER_CREATED, now, actor, username=user.username, role=user.role)
        return user

    async def login(self, username: str, password: str, now: datetime) -> IssuedToken | LoginRefused:
        """Check a password without holding a connection or a lock while Argon2 runs.

        A hashing slot is taken first, so that a busy service answers 503 before anything
        is counted. Then the attempt is counted as a failure, and a lock set if it is one
        too many, in a short transaction of its own that commits at once; only then is
        the password verified (in the slot already held, so it cannot fail for want of
        one), and a success wipes the count. So parallel guesses each count, a crash
        mid-verification still counts, and the expensive part holds no database resource.
        """
        invalid = LoginRefused(InvalidCredentials("The username or password is wrong."))
        if len(password) > MAXIMUM_PASSWORD_LENGTH:
            return invalid
        try:
            username = normalize_username(username)
        except DomainError:
            return invalid  # no account can have this name; nothing to time

        async with self.cpu.slot() as run_in_slot:
            attempt = await self._reserve_attempt(username, now)
            if isinstance(attempt, _Locked):
                # Not audited: no password was checked, and the failure that set the lock
                # is in the log already. Recording these would let anyone who knows a
                # username write to the append-only log as fast as they can send requests.
                return LoginRefused(
                    TooManyAttempts(
                        "This account is locked for a while after repeated failed logins.",
                        retry_after_seconds=attempt.retry_after_seconds,
                    )
                )
            if isinstance(attempt, _NoSuchAccount):
                # The same Argon2 work as a real check, so timing does not tell which
                # usernames exist.
                await run_in_slot(self.hashing.burn_time, password)
                # Counted per hour, one entry per hour: an entry each would let anyone
                # grow the append-only log without bound with invented names, or with
                # the known name of a former staff member.
                if attempt.named and attempt.account is not None:
                    await self._audit_failure(now, attempt.account, attempt.reason)
                elif attempt.account is None:
                    await self.audit.count(AuditAction.LOGIN_FAILED_UNKNOWN_USER, now)
                else:
                    await self.audit.count(AuditAction.LOGIN_FAILED_INACTIVE_ACCOUNT, now)
                return invalid
            verified, upgraded_hash = await run_in_slot(
                self.hashing.verify_and_upgrade, attempt.password_hash, password
            )
        if not verified:
            await self._audit_failure(now, attempt.account, "wrong_password")
            return invalid

        # Locked so that a deactivation committed meanwhile is seen, not raced.
        user = await self.repository.user_by_id(attempt.user_id, lock=True)
        if user is None or not user.is_active:
            await self._audit_failure(now, attempt.account, "inactive")
            return invalid
        self._clear_failures(user)
        if upgraded_hash is not None:
            user.password_hash = upgraded_hash
        issued = await self._issue_token(user, now)
        await self.audit.record(AuditAction.LOGIN, now, user)
        return issued

    async def _audit_failure(self, now: datetime, account: _Account | None, reason: str) -> None:
        await self.audit.record(AuditAction.LOGIN_FAILED, now, account, reason=reason)

    async def _reserve_attempt(self, username: str, now: datetime) -> _Reserved | _Locked | _NoSuchAccount:
        async with self.context.own_transaction() as session:
            # FOR UPDATE serialises attempts on one account for the few milliseconds
            # this takes, so N parallel guesses count as N.
            user = await StaffRepository(session).user_by_username(username, lock=True)
            if user is None:
                return _NoSuchAccount(None, "unknown_account")
            account = _Account(user.id, user.username, user.role)
            if not user.is_active:
                # The first refusal since deactivation (which clears the failure fields)
                # is named in the log: someone tried a former colleague's account. The
                # mark is set in this transaction, under the row lock, so it is once.
                first_refusal = user.last_failed_login_at is None
                if first_refusal:
                    user.last_failed_login_at = now
                return _NoSuchAccount(account, "inactive", named=first_refusal)
            if user.locked_until is not None and user.locked_until > now:
                return _Locked(math.ceil((user.locked_until - now).total_seconds()), account)
            failures = self.throttle.recent_failures(
                user.failed_login_count, user.last_failed_login_at, now
            ) + 1
            user.failed_login_count = failures
            user.last_failed_login_at = now
            user.locked_until = self.throttle.locked_until(failures, now)
            return _Reserved(user.id, user.password_hash, account)

    @staticmethod
    def _clear_failures(user: StaffUser) -> None:
        user.failed_login_count = 0
        user.last_failed_login_at = None
        user.locked_until = None

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
        await self.audit.record(AuditAction.LOGOUT, now, token.user)

    async def _user(self, user_id: uuid.UUID) -> StaffUser:
        user = await self.repository.user_by_id(user_id)
        if user is None:
            raise NotFound("No staff account has this id.")
        return user

    async def deactivate(self, user_id: uuid.UUID, acting_user: StaffUser, now: datetime) -> StaffUser:
        user = await self._user(user_id)
        if user.id == acting_user.id:
            raise Conflict("An administrator cannot deactivate their own account.")
        user.is_active = False
        self._clear_failures(user)  # so that the first refused login after this is named
        await self.repository.revoke_tokens_of(user.id, now)
        await self.session.flush()
        await self.audit.record(AuditAction.USER_DEACTIVATED, now, acting_user, username=user.username)
        return user

    async def set_custodian(self, user_id: uuid.UUID, custodian: bool, acting_user: StaffUser, now: datetime) -> StaffUser:
        """An identity custodian holds every new report's identity key in trust."""
        user = await self._user(user_id)
        if user.id == acting_user.id:
            raise Forbidden("An administrator cannot make themselves a custodian, or stop being one; another administrator can.")
        if custodian and not user.is_active:
            raise Conflict("This account is deactivated.")
        if custodian and user.role_enum not in CUSTODIAN_ROLES:
            raise InvalidInput(
                f"A {user.role} cannot be an identity custodian: a drill coordinator plays no part in real "
                "cases, and an administrator creates the accounts that could fill the other parts of a release."
            )
        if user.is_identity_custodian == custodian:
            return user
        user.is_identity_custodian = custodian
        await self.session.flush()
        action = AuditAction.USER_CUSTODIAN_SET if custodian else AuditAction.USER_CUSTODIAN_UNSET
        await self.audit.record(action, now, acting_user, username=user.username)
        return user

    async def set_email(
        self, user_id: uuid.UUID, email: str | None, acting_user: StaffUser, now: datetime
    ) -> StaffUser:
        """Where the account's notices go; None stops them."""
        user = await self._user(user_id)
        email = normalize_email(email) if email is not None else None
        if user.email == email:
            return user
        user.email = email
        await self.session.flush()
        action = AuditAction.USER_EMAIL_SET if email is not None else AuditAction.USER_EMAIL_CLEARED
        await self.audit.record(action, now, acting_user, username=user.username)
        return user

    async def unlock(self, username_or_id: str | uuid.UUID, *, actor: StaffUser | None, now: datetime) -> StaffUser:
        """Lift a login lock at once (a per-account lock is also a way to keep someone out)."""
        if isinstance(username_or_id, uuid.UUID):
            user = await self._user(username_or_id)
        else:
            user = await self.repository.user_by_username(normalize_username(username_or_id))
            if user is None:
                raise NotFound(f"No staff account is named {username_or_id!r}.")
        self._clear_failures(user)
        await self.session.flush()
        await self.audit.record(AuditAction.USER_UNLOCKED, now, actor, username=user.username)
        return user

    async def register_public_key(self, user: StaffUser, public_key_text: str, now: datetime) -> PublicKey:
        """Replace the caller's public key. Cases sealed to an earlier key stay sealed to
        it: the staff member keeps the old private key file to read them."""
        public_key = PublicKey.from_text(public_key_text)
        if user.public_key_fingerprint == public_key.fingerprint:
            return public_key
        replaced = user.public_key_fingerprint
        user.public_key = public_key.raw
        user.public_key_fingerprint = public_key.fingerprint
        user.public_key_registered_at = now
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError:
            raise Conflict("This public key is registered to another account; make a key pair of your own.") from None
        await self.audit.record(
            AuditAction.KEY_REGISTERED, now, user, fingerprint=public_key.fingerprint, replaced=replaced
        )
        return public_key

    async def colleague_with_key(self, username: str) -> StaffUser:
        user = await self.repository.user_by_username(username.strip().lower())
        if user is None or not user.is_active or user.public_key is None:
            raise NotFound(f"No active staff account named {username!r} has a registered key.")
        return user

    async def users(self) -> Sequence[StaffUser]:
        return await self.repository.users()
