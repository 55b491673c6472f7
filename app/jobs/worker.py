"""The worker: procrastinate runs the periodic jobs on PostgreSQL.

procrastinate defers each job once per period however many workers run (a unique row
per job and tick in `procrastinate_periodic_defers`), and one worker takes each deferred
job (`SELECT ... FOR UPDATE SKIP LOCKED` inside its fetch function). Two runs of the same
job never overlap because `run_job` holds a PostgreSQL advisory lock on a connection of
its own, which also covers `cleanwindow jobs run` and which PostgreSQL releases the
moment a killed worker's connection drops. procrastinate's own job `lock` is not used:
a worker killed mid-job would leave it held by a `doing` row until someone cleared it.
Such stalled rows are failed and deleted by `queue.forget_stalled`.

Its schema is created by our Alembic migration (4ca52d7fd92a), not by procrastinate's
own command.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

import procrastinate
from sqlalchemy import make_url

from app.context import AppContext
from app.jobs.catalogue import JOBS
from app.jobs.registry import PeriodicJob
from app.jobs.runner import run_job
from app.settings import Settings

logger = logging.getLogger("cleanwindow.jobs")
QUEUE = "cleanwindow"
# Finished jobs are deleted at once: `job_runs` keeps the counts, and a queue that grows
# by a row per minute for ever helps no one.
DELETE_FINISHED = "always"


def libpq_conninfo(database_url: str) -> str:
    """procrastinate speaks psycopg: the same database, without SQLAlchemy's driver name."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def schedule_of(job: PeriodicJob, settings: Settings) -> str:
    return settings.jobs.schedules.get(job.name, job.schedule)


def build_queue_app(context: AppContext) -> procrastinate.App:
    settings = context.settings
    assert settings.database_url is not None
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_conninfo(settings.database_url.get_secret_value()),
        min_size=1,
        max_size=max(2, settings.jobs.concurrency + 1),
    )
    app = procrastinate.App(connector=connector)
    for job in JOBS:
        _register(app, context, job, schedule_of(job, settings))
    _register_queue_maintenance(app)
    return app


def _register(app: procrastinate.App, context: AppContext, job: PeriodicJob, cron: str) -> None:
    async def run(timestamp: int) -> None:
        await run_job(context, job)

    task = app.task(name=job.name, queue=QUEUE)(run)
    app.periodic(cron=cron, periodic_id=job.name)(task)


STALLED_SCHEDULE = "*/5 * * * *"


def _register_queue_maintenance(app: procrastinate.App) -> None:
    async def forget_stalled(job_context: procrastinate.JobContext, timestamp: int) -> None:
        """Jobs left `doing` by a worker that stopped sending heartbeats (killed): the
        next tick runs the job again, so the stalled row is only failed and removed."""
        manager = job_context.app.job_manager
        for stalled in await manager.get_stalled_jobs():
            await manager.finish_job(stalled, status=procrastinate.jobs.Status.FAILED, delete_job=True)
            logger.warning("stalled job removed", extra={"job": stalled.task_name})

    task = app.task(name="queue.forget_stalled", queue=QUEUE, pass_context=True)(forget_stalled)
    app.periodic(cron=STALLED_SCHEDULE, periodic_id="queue.forget_stalled")(task)


@asynccontextmanager
async def opened(context: AppContext) -> AsyncIterator[procrastinate.App]:
    app = build_queue_app(context)
    async with app.open_async():
        yield app


# How long a stopping worker lets its running jobs finish before cancelling them (they are
# idempotent: the next run redoes what a cancelled one left).
SHUTDOWN_GRACE_SECONDS = 20


async def run_worker(context: AppContext, *, install_signal_handlers: bool = True, name: str | None = None) -> None:
    """Run the periodic jobs until stopped (SIGINT/SIGTERM, or cancellation)."""
    if not context.settings.debug and context.settings.log_level != "DEBUG":
        # procrastinate logs every job's start and end at INFO: a line a minute per job.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
    settings = context.settings
    if settings.environment == "production" and settings.notify_batch_seconds < 3600:
        logger.warning(
            "NOTIFY_BATCH_SECONDS is below an hour: new-report notices date submissions more "
            "precisely than the logs do (docs/notifications.md)"
        )
    if settings.smtp_url is None and not settings.notify.webhooks:
        logger.warning("no SMTP_URL and no webhook: staff will not be told of new reports or deadlines")
    async with opened(context) as app:
        logger.info("worker started", extra={"jobs": [job.name for job in JOBS]})
        await app.run_worker_async(
            queues=[QUEUE],
            concurrency=context.settings.jobs.concurrency,
            name=name,
            install_signal_handlers=install_signal_handlers,
            delete_jobs=DELETE_FINISHED,
            shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
        )


async def run_worker_forever_in_background(context: AppContext) -> None:
    """`serve`'s worker in development: a crash is logged and retried, never taken down
    with the web server."""
    while True:
        try:
            await run_worker(context, install_signal_handlers=False, name="serve")
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the in-process worker stopped; restarting in 30 s")
            await asyncio.sleep(30)
