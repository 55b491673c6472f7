"""`cleanwindow worker` as operators run it: separate processes on one database, started,
stopped, and killed with SIGKILL, delivering to a real SMTP server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain.clock import utc_now
from app.domain.notifications import EventKind
from app.notifications.models import NotificationDelivery
from app.notifications.outbox import Outbox
from tests.cases.helpers import insert_case
from tests.notifications.helpers import SENDER, notifying, service_on
from tests.notifications.servers import SmtpServer

pytestmark = pytest.mark.slow

EVERY_TWO_SECONDS = "* * * * * */2"
TICK = re.compile(r"notifications\.deliver\[\d+\]\(timestamp=(\d+)\)")


def worker_env(database_url: str, smtp_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url,
        SMTP_URL=smtp_url,
        NOTIFY_FROM=SENDER,
        NOTIFY_BATCH_SECONDS="0",
        CLEANWINDOW_JOBS__SCHEDULES=json.dumps({"notifications.deliver": EVERY_TWO_SECONDS}),
        CLEANWINDOW_NOTIFY__RETRY_BASE_SECONDS="0",
        **extra,
    )
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()




def started_ticks(log: Path) -> list[int]:
    return [
        int(match.group(1))
        for line in log.read_text().splitlines()
        if "start_job" in line and (match := TICK.search(line))
    ]


def test_two_workers_run_each_periodic_job_once_per_period(fresh_database_url, tmp_path):
    env = worker_env(fresh_database_url, "smtp://127.0.0.1:9", CLEANWINDOW_LOG_LEVEL="DEBUG")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [start_worker(env, log) for log in logs]
    try:
        wait_for(lambda: all("start_worker" in log.read_text() for log in logs), "both workers to start", timeout=90)
        wait_for(lambda: len(started_ticks(logs[0]) + started_ticks(logs[1])) >= 6, "six ticks", timeout=90)
        assert all(worker.poll() is None for worker in workers)
    finally:
        for worker in workers:
            stop(worker)
    ticks = started_ticks(logs[0]) + started_ticks(logs[1])
    repeated = [tick for tick, count in Counter(ticks).items() if count > 1]
    assert repeated == [], f"ticks run twice: {repeated}"
    assert all(tick % 2 == 0 for tick in ticks)
    # Both were running and listening the whole time; which of them wins each tick is a
    # race (on a loaded machine one may win them all), so only "never twice" is asserted.
    assert all(worker.returncode == 0 for worker in workers), [log.read_text()[-2000:] for log in logs]


async def test_a_notice_committed_before_its_worker_is_killed_is_delivered_once_after_a_restart(
    fresh_database_url, settings, tmp_path
):
    with SmtpServer() as smtp:
        env = worker_env(fresh_database_url, smtp.url)
        async with service_on(fresh_database_url, notifying(settings, smtp_url=smtp.url, webhook_url=None)) as service:
            supervisor = await service.add_staff("supervisor", "supervisor@agency.example")
            case = await insert_case(service.sessionmaker)
            log = tmp_path / "worker.log"
            first = start_worker(env, log)
            try:
                # The server takes the mail in slowly, then refuses it: the worker is
                # killed while it waits, holding the delivery it has not yet marked sent.
                smtp.handler.answers = [(8.0, "451 4.3.0 try again later")]
                async with service.sessionmaker() as session:
                    await Outbox(session, service.settings).emit(
                        EventKind.DEADLINE_MISSED,
                        utc_now(),
                        audience=["supervisor"],
                        case_id=case.id,
                        details={"deadline": "acknowledge", "due_on": "2026-11-01"},
                    )
                    await session.commit()
                wait_for(lambda: smtp.handler.receiving >= 1, "the worker to start sending")
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                if first.poll() is None:
                    first.kill()
            assert smtp.accepted == []

            second = start_worker(env, log)
            try:
                [mail] = smtp.wait_for(1, timeout=60)
                assert mail.recipients == [supervisor.email]
                # Several more ticks: nothing is sent again.
                time.sleep(6)
                assert len(smtp.accepted) == 1
            finally:
                stop(second)
            async with service.sessionmaker() as session:
                [delivery] = (await session.scalars(select(NotificationDelivery))).all()
            assert delivery.state == "sent"
            assert mail.message["Message-ID"] == f"<{delivery.id}@notices.example.org>"
