"""Running one job once, whoever asks (a worker, or `cleanwindow jobs run`).

Two runs of the same job never overlap: each takes a PostgreSQL advisory lock named
after the job, on a connection of its own, and a second run that finds it taken steps
aside. Every run is counted in `job_runs` (runs, failures, the last result), shared by
all workers, which `/metrics` and `cleanwindow jobs list` read.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

from app.context import AppContext
from app.db.session import own_transaction
from app.jobs.models import JobRun
from app.jobs.registry import JobResult, PeriodicJob

logger = logging.getLogger("cleanwindow.jobs")

SKIPPED = {"skipped": "already running elsewhere"}


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key of the job's own."""
    return int.from_bytes(hashlib.sha256(f"cleanwindow-job:{name}".encode()).digest()[:8], "big", signed=True)


async def _count(context: AppContext, name: str, now: datetime, **values: object) -> None:
    async with own_transaction(context.sessionmaker) as session:
        statement = insert(JobRun).values(name=name, **values)
        updates = {key: statement.excluded[key] for key in values}
        if "runs" in values:
            updates["runs"] = JobRun.runs + 1
        if "failures" in values:
            updates["failures"] = JobRun.failures + 1
        await session.execute(statement.on_conflict_do_update(index_elements=[JobRun.name], set_=updates))


async def run_job(context: AppContext, job: PeriodicJob) -> JobResult:
    """Run `job` now unless another run of it holds its lock; returns what it reported."""
    engine = context.sessionmaker.kw["bind"]
    async with engine.connect() as connection:
        locked = await connection.scalar(select(func.pg_try_advisory_lock(lock_key(job.name))))
        await connection.commit()
        if not locked:
            logger.info("job skipped: another run holds it", extra={"job": job.name})
            return dict(SKIPPED)
        try:
            started = context.clock()
            await _count(context, job.name, started, runs=1, last_started_at=started)
            try:
                result = await job.run(context)
            except Exception as error:
                finished = context.clock()
                await _count(
                    context,
                    job.name,
                    finished,
                    failures=1,
                    last_finished_at=finished,
                    last_error=type(error).__name__,
                )
                logger.exception("job failed", extra={"job": job.name, "error_type": type(error).__name__})
                raise
            finished = context.clock()
            await _count(
                context,
                job.name,
                finished,
                last_finished_at=finished,
                last_succeeded_at=finished,
                last_result=result,
                last_error=None,
            )
            # A run that found nothing to do is routine; say so only when debugging.
            level = logging.INFO if any(value for value in result.values()) else logging.DEBUG
            logger.log(level, "job done", extra={"job": job.name, **{f"result_{k}": v for k, v in result.items()}})
            return result
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(job.name)})
            await connection.commit()


async def run_counts(context: AppContext) -> dict[str, JobRun]:
    """Every job's counts, as `cleanwindow jobs list` shows them."""
    async with own_transaction(context.sessionmaker) as session:
        return {run.name: run for run in (await session.scalars(select(JobRun))).all()}
