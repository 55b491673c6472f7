"""The application context: what every request and every command shares, built once.

`create_app` builds it when the service starts (`app.state.context`); the command line
builds it with `AppContext.build(settings, sessionmaker)` when a command needs the
database. A service takes the request's session and this context, nothing else:
`IntakeService(session, context)`; routers get one through `service_dependency` in
`app/api/deps.py`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import SessionMaker, own_transaction
from app.domain.clock import Clock, utc_now
from app.domain.kdf import PRODUCTION_KEY_DERIVATION, KeyDerivation
from app.domain.reporter_access import IdempotencySealer, ReporterSessionCodec
from app.domain.staff import PasswordHashing
from app.platform.cpu import CpuBudget
from app.settings import Settings


class SaltSource(Protocol):
    async def receipt_salt(self) -> bytes: ...


class ReceiptSalt:
    """The installation's salt never changes, so each process reads it once."""

    def __init__(self) -> None:
        self.value: bytes | None = None

    async def get(self, repository: SaltSource) -> bytes:
        if self.value is None:
            self.value = await repository.receipt_salt()
        return self.value


@dataclass(frozen=True, kw_only=True)
class AppContext:
    settings: Settings
    sessionmaker: SessionMaker
    clock: Clock
    # Argon2 parameters of passwords and receipts: production's, except in the test suite.
    key_derivation: KeyDerivation
    password_hashing: PasswordHashing
    # Argon2 costs a core and 64 MiB: staff logins and receipts each have a budget, so a
    # flood of one cannot starve the other.
    login_cpu: CpuBudget
    receipt_cpu: CpuBudget
    receipt_salt: ReceiptSalt
    reporter_sessions: ReporterSessionCodec
    idempotency: IdempotencySealer

    @classmethod
    def build(
        cls,
        settings: Settings,
        sessionmaker: SessionMaker,
        *,
        clock: Clock = utc_now,
        key_derivation: KeyDerivation = PRODUCTION_KEY_DERIVATION,
    ) -> AppContext:
        auth, intake = settings.auth, settings.intake
        return cls(
            settings=settings,
            sessionmaker=sessionmaker,
            clock=clock,
            key_derivation=key_derivation,
            password_hashing=PasswordHashing(key_derivation.passwords),
            login_cpu=CpuBudget(auth.max_concurrent_hashes, auth.hash_queue_seconds),
            receipt_cpu=CpuBudget(
                intake.max_concurrent_receipt_hashes, intake.receipt_hash_queue_seconds
            ),
            receipt_salt=ReceiptSalt(),
            reporter_sessions=ReporterSessionCodec(settings.secret_key_bytes),
            idempotency=IdempotencySealer(settings.secret_key_bytes),
        )

    def own_transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A short transaction apart from the request's; see `app/db/session.py` for the
        rule and the places allowed to use it."""
        return own_transaction(self.sessionmaker)


class Service:
    """The one shape of a service: the request's session (flushed, never committed) and
    the application context."""

    def __init__(self, session: AsyncSession, context: AppContext):
        self.session = session
        self.context = context
        self.settings = context.settings
