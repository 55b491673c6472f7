"""Engine, sessions, and the transaction rule.

**The request's session owns the transaction.** Services and repositories call `flush()`
when they need database-generated values and never commit; only the request's session
(`get_session` in `app/api/deps.py`, behind `SessionDep`) commits, after the endpoint
returned and before the response is sent, and rolls back on any exception. So a client
is never told "done" about something that was not committed. A command-line command
runs in one transaction of its own the same way (`app/cli/`).

**The named exceptions.** A few places deliberately work in a short transaction of their
own, apart from the request's, and they all open it with `own_transaction` (or
`AppContext.own_transaction()`), so that a search for it finds every one:

- staff login: counting the attempt as a failure (and locking the account) commits at
  once, before Argon2 runs, so parallel guesses each count and a crash still counts
  (`StaffService._reserve_attempt`);
- receipt login: the same for the shared budget of wrong receipts, and reading the
  installation's receipt salt (`ReporterService.open_session`);
- intake's pre-checks: the salt, an earlier report with the same `Idempotency-Key`, a
  reused challenge, read before the receipt is hashed so that no connection is held
  while Argon2 runs, and a drill token checked (`IntakeService.submit`); a coordinator's
  campaign looked up before an injection (`IntakeService.inject`);
- attachment uploads: the reporter's session is checked in a transaction that ends at
  once (`ReporterService.authenticate_briefly`), then the file is staged chunk by chunk,
  each write in a short transaction, and published under the case's row lock in one
  more, so a slow client holds no connection and no lock between chunks
  (`app/cases/attachment_store.py`: `usage`, `stage`, `add_chunks`, `publish`, `discard`);
- attachment downloads: chunks are read one per transaction while the response streams,
  after the request's session has closed (`AttachmentStore.sealed_chunks`, used by
  `ReporterService.attachment` and `CaseService.attachment_chunks`);
- a report sent from a page with a file: the report is committed before the file
  streams in, so that the upload can stage the file against the stored case, as on the
  mailbox's upload path (`IntakeService.submit_committed`, used by `app/web/report_pages.py`);
- the readiness probe, which has no request session (`app/platform/health.py`);
- the figures `/metrics` reads from the database at each scrape, in one short read of
  their own after the endpoint's token check (`app/jobs/metrics.py`);
- the startup check of channel routing, before any request (`app/intake/routing.py`);
- writing the aggregate audit entries of ended hours before the log is read, so that a
  long verification does not hold the chain's head (`app/audit/router.py`).

- background jobs, which have no request: each job opens the transactions it needs, one
  per unit of work so that a crash half-way loses only the unit under way (the job runs
  counted in app/jobs/runner.py; every job of app/jobs/catalogue.py in its own module,
  each named there): the outbox turned into deliveries in one transaction, then each
  delivery sent under its row lock in one of its own (`app/notifications/delivery.py`);
  the retention purge, one transaction per case under its row lock,
  so that a purge and its audit entry commit together (`app/cases/retention.py`);
  deadline reminders and escalations, one transaction per batch of cases
  (`app/cases/reminders.py`); closing ended drill campaigns and purging their
  cases, one transaction per campaign (`app/drills/housekeeping.py`); the cleanup of
  expired data, one batch per transaction (`app/jobs/cleanup.py`); the daily audit
  check, the walk, then the alert (`app/audit/housekeeping.py`);

A new one needs a reason as good as these, and a line in this list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings

SessionMaker = async_sessionmaker[AsyncSession]


def build_engine(settings: Settings) -> AsyncEngine:
    if settings.database_url is None:
        raise RuntimeError("no database URL: start the embedded PostgreSQL first")
    engine = create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # No pre-ping (a round trip on every checkout, a tenth of a staff request's CPU):
        # `_discard_if_closed` below finds the connections a restart or failover ended.
        pool_timeout=settings.database_pool_timeout_seconds,
        # asyncpg's own connect timeout is 60 s; a server that does not answer should cost
        # a request no more than an exhausted pool does.
        connect_args={
            "timeout": settings.database_pool_timeout_seconds,
            # A client machine that vanishes (no FIN, no RST) would otherwise keep its row
            # and advisory locks for Linux's default two hours of TCP silence: a lost
            # worker would hold its job, a lost replica a case's row lock. PostgreSQL
            # probes after a minute of silence and drops the connection within two.
            "server_settings": {
                "tcp_keepalives_idle": "60",
                "tcp_keepalives_interval": "10",
                "tcp_keepalives_count": "6",
            },
        },
        # Error messages would otherwise quote bound parameters (hashes, digests, and
        # later case data) into the logs.
        hide_parameters=True,
        # No `echo`: SQLAlchemy's echo prints every statement straight to stdout with the
        # millisecond, around the held and coarsened reporter-path lines. In debug,
        # `configure_logging` lets the statements through the service's own handler.
    )
    event.listen(engine.sync_engine, "checkout", _discard_if_closed)
    return engine


def _discard_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server ended while it sat idle (a restart, a failover, an
    administrator) is replaced before use: asyncpg saw the server close it, so asking
    costs no round trip. The pool retries the checkout with a new connection.

    What the ping this replaces caught and this does not: a close the event loop has not
    read yet (a restart in the very instant of the checkout), and a connection a
    middlebox dropped silently that answers the next packet with a reset (the server's
    keepalives every minute keep such state alive). Either costs that one request a 503
    `database-unavailable` to retry, never a 500 or a half-written change, and SQLAlchemy
    then replaces the whole pool. A server that vanished without a word is found by
    neither: both wait on TCP."""
    if record.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def build_sessionmaker(engine: AsyncEngine | None = None) -> SessionMaker:
    """Sessions on `engine`; without one, unbound until `configure(bind=engine)` (the
    service builds its context before its lifespan starts the engine)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def own_transaction(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """A short transaction apart from the request's: committed when the block ends,
    rolled back if it raises. Only for the exceptions listed in this module's docstring."""
    async with sessionmaker() as session, session.begin():
        yield session
