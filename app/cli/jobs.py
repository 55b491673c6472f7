"""The operator's commands for background work: `worker`, `jobs list`, `jobs run NAME`.

They work on the database here (DATABASE_URL, or the embedded one), like `users create`.
"""

from __future__ import annotations

import json

import typer

from app.client.errors import fail


def worker() -> None:
    """Run the background jobs (notices, deadlines, retention, cleanup, audit check) until
    stopped. Any number of workers may run at once, on any machines."""
    import asyncio

    from app.cli.database import load_settings, with_app_context
    from app.jobs.worker import run_worker
    from app.platform.logging import configure_logging

    settings = load_settings()
    configure_logging("DEBUG" if settings.debug else settings.log_level, settings=settings)

    async def run(context) -> None:
        try:
            await run_worker(context)
        except asyncio.CancelledError:
            pass

    with_app_context(settings, run)


def jobs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The periodic jobs, their schedules, and how their runs went (from every worker)."""
    from app.cli.database import load_settings, with_app_context
    from app.jobs.catalogue import JOBS
    from app.jobs.runner import run_counts
    from app.jobs.worker import schedule_of

    settings = load_settings()
    runs = with_app_context(settings, run_counts)
    rows = []
    for job in JOBS:
        run = runs.get(job.name)
        rows.append(
            {
                "name": job.name,
                "schedule": schedule_of(job, settings),
                "description": job.description,
                "runs": run.runs if run else 0,
                "failures": run.failures if run else 0,
                "last_succeeded_at": run.last_succeeded_at.isoformat() if run and run.last_succeeded_at else None,
                "last_result": run.last_result if run else None,
                "last_error": run.last_error if run else None,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        last = row["last_succeeded_at"] or "never"
        typer.echo(f"{row['name']:<24} {row['schedule']:<16} runs {row['runs']}, failures {row['failures']}, last success {last}")
        typer.echo(f"    {row['description']}")
        if row["last_error"]:
            typer.echo(f"    last failure: {row['last_error']}")


def jobs_run(name: str = typer.Argument(..., help="A job's name, as `cleanwindow jobs list` shows it.")) -> None:
    """Run one job now, once, here (it waits for nothing: if a worker is running it right
    now, this says so and stops)."""
    from app.cli.database import load_settings, with_app_context
    from app.jobs.catalogue import BY_NAME
    from app.jobs.runner import SKIPPED, run_job

    job = BY_NAME.get(name)
    if job is None:
        raise fail(f"no job is named {name!r}; `cleanwindow jobs list` shows them", code=2)
    settings = load_settings()

    async def run(context) -> dict:
        return await run_job(context, job)

    try:
        result = with_app_context(settings, run)
    except typer.Exit:
        raise
    except Exception as error:
        raise fail(f"{name} failed: {type(error).__name__}") from None
    if result == SKIPPED:
        raise fail(f"{name} is running elsewhere right now; nothing was done")
    typer.echo(json.dumps({"job": name, "result": result}, ensure_ascii=False))
