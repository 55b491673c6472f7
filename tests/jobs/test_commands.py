"""`cleanwindow jobs list`, `jobs run NAME` and `users create --email`, run as separate
processes the way an operator runs them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.jobs.catalogue import JOBS
from app.jobs.runner import lock_key
from tests.test_cli import PASSWORD, run_cli, stored_user

pytestmark = pytest.mark.slow


async def test_jobs_run_runs_a_job_once_and_jobs_list_counts_it(fresh_database_url: str) -> None:
    listed = run_cli("jobs", "list", "--json", database_url=fresh_database_url)
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [job["name"] for job in jobs] == [job.name for job in JOBS]
    assert all(job["runs"] == 0 and job["last_succeeded_at"] is None for job in jobs)

    ran = run_cli("jobs", "run", "notifications.deliver", database_url=fresh_database_url)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {
        "job": "notifications.deliver",
        "result": {"events": 0, "unrouted": 0, "sent": 0, "retry": 0, "dead": 0},
    }
    after = {job["name"]: job for job in json.loads(run_cli("jobs", "list", "--json", database_url=fresh_database_url).stdout)}
    assert after["notifications.deliver"]["runs"] == 1 and after["notifications.deliver"]["failures"] == 0
    assert after["notifications.deliver"]["last_succeeded_at"] is not None
    readable = run_cli("jobs", "list", database_url=fresh_database_url)
    assert "notifications.deliver" in readable.stdout and "runs 1, failures 0" in readable.stdout


async def test_jobs_run_refuses_an_unknown_job_and_steps_aside_for_a_running_one(fresh_database_url: str) -> None:
    unknown = run_cli("jobs", "run", "notifications.everything", database_url=fresh_database_url)
    assert unknown.returncode == 2 and "no job is named 'notifications.everything'" in unknown.stderr

    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as holder:
            # A worker is running the job right now: it holds the job's advisory lock.
            await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key("notifications.deliver")})
            busy = run_cli("jobs", "run", "notifications.deliver", database_url=fresh_database_url)
            assert busy.returncode == 1 and "running elsewhere" in busy.stderr
            runs = await holder.scalar(text("SELECT count(*) FROM job_runs"))
            assert runs == 0
            await holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key("notifications.deliver")})
    finally:
        await engine.dispose()
    assert run_cli("jobs", "run", "notifications.deliver", database_url=fresh_database_url).returncode == 0


async def test_users_create_takes_an_address_for_notices(fresh_database_url: str) -> None:
    created = run_cli(
        "users", "create", "night.triage", "--role", "triage", "--email", " Night.Triage@Agency.EXAMPLE ",
        database_url=fresh_database_url, stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert "notices to Night.Triage@agency.example" in created.stdout
    assert (await stored_user(fresh_database_url, "night.triage")).email == "Night.Triage@agency.example"

    refused = run_cli(
        "users", "create", "day.triage", "--role", "triage", "--email", "not an address",
        database_url=fresh_database_url, stdin=PASSWORD + "\n",
    )
    assert refused.returncode != 0 and "e-mail address looks like" in refused.stderr
    assert await stored_user(fresh_database_url, "day.triage") is None
    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(text("staff_users"))) == 1
    finally:
        await engine.dispose()
