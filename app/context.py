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
from app.platform.hourly import CompletedHours
from app.platform.metrics import ScrapeCollector
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
    # Real reports this process accepted, per clock hour (app/platform/hourly.py).
    intake_hours: CompletedHours
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
            login_cpu=CpuBudget(auth.max_concurrent_hashes, auth.hash_queue_seconds, clock),
            receipt_cpu=CpuBudget(
                intake.max_concurrent_receipt_hashes, intake.receipt_hash_queue_seconds, clock
            ),
            intake_hours=CompletedHours(),
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


async def _last_completed_hour(context: AppContext) -> list:
    from prometheus_client.metrics_core import GaugeMetricFamily

    now = context.clock()
    intake = GaugeMetricFamily(
        "cleanwindow_intake_reports_last_hour",
        "Real reports (never drills) this process accepted in the last completed clock hour; "
        "it changes only when an hour ends.",
    )
    intake.add_metric([], context.intake_hours.last_completed(now).count)
    waits = GaugeMetricFamily(
        "cleanwindow_hash_waits_last_hour",
        "Argon2id calls that got a slot in the last completed hour, by budget.",
        labels=["budget"],
    )
    waited = GaugeMetricFamily(
        "cleanwindow_hash_wait_seconds_last_hour",
        "Seconds those calls waited for a slot in the last completed hour, in all, by budget.",
        labels=["budget"],
    )
    longest = GaugeMetricFamily(
        "cleanwindow_hash_wait_max_seconds_last_hour",
        "The longest wait for a slot in the last completed hour, by budget.",
        labels=["budget"],
    )
    refused = GaugeMetricFamily(
        "cleanwindow_hash_refused_last_hour",
        "Calls answered 503 in the last completed hour because no slot freed up in time, by budget.",
        labels=["budget"],
    )
    for budget, cpu in (("receipt", context.receipt_cpu), ("login", context.login_cpu)):
        figures = cpu.waits.last_completed(now)
        waits.add_metric([budget], figures.count)
        waited.add_metric([budget], figures.total)
        longest.add_metric([budget], figures.largest)
        refused.add_metric([budget], cpu.refusals.last_completed(now).count)
    return [intake, waits, waited, longest, refused]


# This process's reporter-side figures, at hour granularity: read at each scrape.
LAST_COMPLETED_HOUR = ScrapeCollector("last_completed_hour", _last_completed_hour)
