"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.deps import get_session
from app.audit import router as audit
from app.cases import router as cases
from app.context import LAST_COMPLETED_HOUR, AppContext
from app.db.session import SessionMaker, build_engine, build_sessionmaker
from app.domain.kdf import PRODUCTION_KEY_DERIVATION, KeyDerivation
from app.drills import router as drills
from app.identity import router as identity
from app.intake import router as intake
from app.notifications import router as notifications
from app.intake.routing import warn_about_unreadable_channels
from app.jobs.metrics import DATABASE_METRICS
from app.platform import health
from app.platform.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    UnexpectedErrorMiddleware,
)
from app.platform.openapi import install_openapi
from app.platform.problems import install_problem_handlers
from app.reporter import router as reporter
from app.settings import Settings
from app.staff import router as staff
from app.web import router as web
from app.platform.privacy import is_reporter_facing
from app.web.forms import FORM_MAX_BYTES
from app.web.pages import PageHeaders
from app.web.report_pages import TEXT_PARTS_MAX

# Paths that take a file: the mailbox's uploads, and the pages' report forms (whose check
# page may send one with the report; their url-encoded posts keep the usual limit).
def is_page_path(path: str) -> bool:
    """A path a reporter's browser may open: not the API, not a staff or operator path."""
    return not path.startswith("/api/") and is_reporter_facing(path)


UPLOAD_PATHS = ("/api/v1/reporter/attachments", "/status/attachments")
REPORT_FORM_PATHS = ("/report", "/internal/report")
MULTIPART_OVERHEAD_BYTES = 16 * 1024

DESCRIPTION = """
Clean Window receives anonymous, end-to-end encrypted corruption reports, routes them
through a triage state machine, and runs mock drills kept apart from real cases.

Every error is an RFC 9457 problem document (`application/problem+json`). Staff endpoints
take a bearer token from `POST /api/v1/auth/token`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    sessionmaker: SessionMaker | None = None,
    key_derivation: KeyDerivation = PRODUCTION_KEY_DERIVATION,
    run_jobs: bool = False,
) -> FastAPI:
    """Build the service and its application context (`app.state.context`), once. With
    `sessionmaker` given (tests) the app uses it and owns no engine; otherwise the
    lifespan starts an engine on `settings.database_url` and binds the context's
    sessionmaker to it. `key_derivation` is production's unless the test suite passes its
    cheap one; it is not a setting, so no deployment can lower it. `run_jobs` runs the
    background jobs inside this process (`serve` in development)."""
    settings = settings or Settings()
    owns_engine = sessionmaker is None
    context = AppContext.build(
        settings, sessionmaker or build_sessionmaker(), key_derivation=key_derivation
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings) if owns_engine else None
        if engine is not None:
            context.sessionmaker.configure(bind=engine)
        jobs = None
        if run_jobs:
            from app.jobs.worker import run_worker_forever_in_background

            jobs = asyncio.create_task(run_worker_forever_in_background(context), name="cleanwindow-jobs")
        try:
            await warn_about_unreadable_channels(app.state.context)
            yield
        finally:
            if jobs is not None:
                jobs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="Clean Window",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc load scripts from a CDN; a reporting service must not make
        # its visitors' browsers call third parties, so they exist only in development.
        docs_url="/docs" if settings.environment == "development" else None,
        redoc_url=None,
    )
    app.state.context = context
    # Figures /metrics reads from the database at each scrape (app/platform/metrics.py).
    app.state.scrape_collectors = [DATABASE_METRICS, LAST_COMPLETED_HOUR]

    install_problem_handlers(app)
    install_openapi(app, database_dependency=get_session)
    # Added innermost first: the request context wraps everything, so even the last-resort
    # 500 carries a request id and is counted in the metrics.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.http.max_body_bytes,
        # Room for the largest file plus the multipart framing around it.
        overrides={
            **{path: settings.intake.attachments.max_bytes + MULTIPART_OVERHEAD_BYTES for path in UPLOAD_PATHS},
            # A report's fields (at most TEXT_PARTS_MAX of text), then one file.
            **{
                path: settings.intake.attachments.max_bytes + TEXT_PARTS_MAX + MULTIPART_OVERHEAD_BYTES
                for path in REPORT_FORM_PATHS
            },
            # The drill page's report form, url-encoded, at its field limits.
            "/drill": max(settings.http.max_body_bytes, FORM_MAX_BYTES),
        },
    )
    app.add_middleware(PageHeaders, is_page_path=is_page_path)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(RequestContextMiddleware)

    # A request is matched against the routers in this order, route by route: the staff
    # case and audit paths, the busiest, come first. (Intake and the mailbox spend their
    # time in the receipt KDF; a few more routes to pass cost them nothing measurable.)
    app.include_router(health.router)
    app.include_router(cases.router)
    app.include_router(audit.router)
    app.include_router(staff.router)
    app.include_router(identity.router)
    app.include_router(drills.router)
    app.include_router(notifications.router)
    app.include_router(intake.router)
    app.include_router(reporter.router)
    app.include_router(web.router)
    return app
