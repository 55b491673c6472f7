"""Two `cleanwindow serve` replicas and two `cleanwindow worker`s on one PostgreSQL, in
production mode, behind a round-robin proxy: every rule that must hold for the service
holds across replicas exactly as it does on one, because the state lives in PostgreSQL.

The client opens a new connection per request, so the proxy alternates replicas request
by request; each test checks from the proxy's record that its requests really went to
both replicas, in turn. Real Argon2 (production's parameters: no setting lowers them)
prices each receipt and each staff login, so the counts are small.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from app.domain.receipts import new_receipt
from tests.conftest import _admin, database_url_named
from tests.deploy.processes import (
    STAFF_PASSWORD,
    Processes,
    RoundRobinProxy,
    ServiceProcess,
    fresh_connection_client,
    idempotency_key,
    insert_staff,
    problem,
    processes,
    production_env,
    query,
    report_body,
    solved_pow,
)
from tests.notifications.servers import SmtpServer

pytestmark = pytest.mark.slow

FREE_LOGIN_ATTEMPTS = 3
RECEIPT_FAILURE_BUDGET = 3
SENDER = "cleanwindow@notices.example.org"
TRIAGE_EMAIL = "triage@agency.example"
EVERY_TWO_SECONDS = "* * * * * */2"
TICK = re.compile(r"notifications\.deliver\[\d+\]\(timestamp=(\d+)\)")


@dataclass
class Cluster:
    database_url: str
    replicas: list[ServiceProcess]
    workers: list[ServiceProcess]
    group: Processes
    proxy: RoundRobinProxy
    smtp: SmtpServer

    def client(self) -> httpx.AsyncClient:
        return fresh_connection_client(self.proxy.url)

    def served_since(self, mark: int) -> list[int]:
        return list(self.proxy.served[mark:])

    async def case_count(self) -> int:
        [(count,)] = await query(self.database_url, "SELECT count(*) FROM cases")
        return count


def assert_alternated(served: list[int]) -> None:
    """Each request went to the other replica than the one before it."""
    assert set(served) == {0, 1}, served
    assert all(first != second for first, second in zip(served, served[1:])), served


@pytest.fixture(scope="module")
async def cluster(postgres_server_url, recovery_key, tmp_path_factory) -> AsyncIterator[Cluster]:
    name = f"cw_replicas_{secrets.token_hex(6)}"
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    url = database_url_named(postgres_server_url, name)
    folder: Path = tmp_path_factory.mktemp("replicas")
    try:
        with SmtpServer() as smtp:
            env = production_env(
                url,
                recovery_key,
                CLEANWINDOW_AUTH__LOGIN_FREE_ATTEMPTS=str(FREE_LOGIN_ATTEMPTS),
                CLEANWINDOW_INTAKE__RECEIPT_FAILURES_PER_WINDOW=str(RECEIPT_FAILURE_BUDGET),
                SMTP_URL=smtp.url,
                NOTIFY_FROM=SENDER,
                NOTIFY_BATCH_SECONDS="0",
                CLEANWINDOW_NOTIFY__BATCH_JITTER_SECONDS="0",
                CLEANWINDOW_NOTIFY__RETRY_BASE_SECONDS="0",
            )
            worker_env = {
                **env,
                "CLEANWINDOW_JOBS__SCHEDULES": json.dumps({"notifications.deliver": EVERY_TWO_SECONDS}),
                "CLEANWINDOW_LOG_LEVEL": "DEBUG",  # procrastinate's start_worker and start_job lines
            }
            with processes(folder) as group:
                # Both replicas start at once on an empty database: each applies the
                # migrations at startup, one after the other under the migrations' lock.
                replicas = [group.serve("replica-a", env), group.serve("replica-b", env)]
                for replica in replicas:
                    replica.wait_ready()
                await asyncio.gather(
                    insert_staff(url, "locked-out", "investigator"),
                    insert_staff(url, "unaffected", "investigator"),
                    insert_staff(url, "triage-officer", "triage", email=TRIAGE_EMAIL),
                )
                workers = [group.worker("worker-1", worker_env), group.worker("worker-2", worker_env)]
                for worker in workers:
                    worker.wait_ready()
                with RoundRobinProxy([replica.port for replica in replicas]) as proxy:
                    yield Cluster(url, replicas, workers, group, proxy, smtp)
                # Every process ran through the whole module: none crashed or restarted.
                assert all(process.running() and process.starts == 1 for process in group.all)
    finally:
        await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_staff_login_lock_counts_failures_made_on_either_replica(cluster: Cluster) -> None:
    mark = len(cluster.proxy.served)
    async with cluster.client() as client:
        for attempt in range(FREE_LOGIN_ATTEMPTS):
            wrong = await client.post(
                "/api/v1/auth/token", data={"username": "locked-out", "password": f"not the password {attempt}"}
            )
            problem(wrong, 401)
        # The right password now, on each replica in turn: the account is locked on both.
        for _ in range(2):
            locked = await client.post("/api/v1/auth/token", data={"username": "locked-out", "password": STAFF_PASSWORD})
            assert problem(locked, 429)["type"].endswith("too-many-attempts")
            assert int(locked.headers["retry-after"]) > 0
        # The lock is the account's, not the service's.
        other = await client.post("/api/v1/auth/token", data={"username": "unaffected", "password": STAFF_PASSWORD})
        assert other.status_code == 200, other.text
    assert_alternated(cluster.served_since(mark))


async def wait_for_a_fresh_budget_window() -> None:
    """The receipt-failure budget counts per hour (the window starts on the hour): a run in
    the last seconds of an hour would see its count restart half-way."""
    now = datetime.now(timezone.utc)
    left = 3600 - (now.minute * 60 + now.second)
    if left < 30:
        await asyncio.sleep(left + 1)


async def test_the_wrong_receipt_budget_is_shared_by_the_replicas(cluster: Cluster) -> None:
    await wait_for_a_fresh_budget_window()
    async with cluster.client() as client:
        body = report_body("budget")
        body["pow"] = await solved_pow(client)
        submitted = await client.post("/api/v1/reports", json=body)
        assert submitted.status_code == 201, submitted.text
        receipt = submitted.json()["receipt"]

        mark = len(cluster.proxy.served)
        # A receipt that opens its report takes its count back.
        assert (await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})).status_code == 201
        for _ in range(RECEIPT_FAILURE_BUDGET):
            problem(await client.post("/api/v1/reporter/sessions", json={"receipt": new_receipt()}), 401)
        # The budget is spent on both replicas: even the right receipt waits, on either.
        for _ in range(2):
            paused = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
            assert problem(paused, 429)["type"].endswith("too-many-attempts")
            assert int(paused.headers["retry-after"]) > 0
    assert_alternated(cluster.served_since(mark))


async def test_a_challenge_solved_once_makes_one_report_whichever_replica_sees_it(cluster: Cluster) -> None:
    before = await cluster.case_count()
    async with cluster.client() as client:
        mark = len(cluster.proxy.served)
        solution = await solved_pow(client)  # issued by one replica...
        first = await client.post(
            "/api/v1/reports", json={**report_body("pow-first"), "pow": solution}, headers={"Idempotency-Key": idempotency_key()}
        )
        assert first.status_code == 201, first.text  # ...accepted by the other
        replayed = await client.post(
            "/api/v1/reports", json={**report_body("pow-replayed"), "pow": solution}, headers={"Idempotency-Key": idempotency_key()}
        )
        assert problem(replayed, 409)["type"].endswith("challenge-reused")
    served = cluster.served_since(mark)
    assert_alternated(served)
    assert served[1] != served[2], "the replay must go to the other replica than the first submission"
    assert await cluster.case_count() == before + 1


async def test_a_retry_with_the_same_idempotency_key_on_the_other_replica_returns_the_same_receipt(
    cluster: Cluster,
) -> None:
    before = await cluster.case_count()
    async with cluster.client() as client:
        # One after the other: the first replica answers, the retry lands on the second.
        key = idempotency_key()
        body = {**report_body("retried"), "pow": await solved_pow(client)}
        mark = len(cluster.proxy.served)
        first = await client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key})
        retry = await client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == retry.status_code == 201, (first.text, retry.text)
        assert retry.json()["receipt"] == first.json()["receipt"]
        assert_alternated(cluster.served_since(mark))

        # At the same moment, one on each replica: one case, one receipt for both.
        key = idempotency_key()
        body = {**report_body("raced"), "pow": await solved_pow(client)}
        mark = len(cluster.proxy.served)
        raced = await asyncio.gather(
            *(client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key}) for _ in range(2))
        )
        assert [response.status_code for response in raced] == [201, 201], [response.text for response in raced]
        assert raced[0].json()["receipt"] == raced[1].json()["receipt"]
        assert Counter(cluster.served_since(mark)) == {0: 1, 1: 1}
    assert await cluster.case_count() == before + 2
    [(keyed, distinct)] = await query(
        cluster.database_url, "SELECT count(idempotency_digest), count(DISTINCT idempotency_digest) FROM cases"
    )
    assert keyed == distinct


def started_ticks(worker: ServiceProcess) -> list[int]:
    return [
        int(match.group(1))
        for line in worker.log_text().splitlines()
        if "start_job" in line and (match := TICK.search(line))
    ]


async def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_a_notice_of_a_report_on_a_replica_is_mailed_once_by_one_of_two_workers(cluster: Cluster) -> None:
    async def outbox_drained() -> bool:
        [(events, unsent)] = await query(
            cluster.database_url,
            "SELECT (SELECT count(*) FROM notification_events),"
            " (SELECT count(*) FROM notification_deliveries WHERE state <> 'sent')",
        )
        return events == 0 and unsent == 0

    await wait_until(outbox_drained, "the earlier tests' notices to be sent")
    mails_before = len(cluster.smtp.accepted)
    async with cluster.client() as client:
        body = {**report_body("notice"), "pow": await solved_pow(client)}
        assert (await client.post("/api/v1/reports", json=body)).status_code == 201

    async def mailed() -> bool:
        return len(cluster.smtp.accepted) > mails_before and await outbox_drained()

    await wait_until(mailed, "the worker to mail the new report's notice")
    mails = cluster.smtp.accepted
    assert all(mail.recipients == [TRIAGE_EMAIL] for mail in mails)
    message_ids = [mail.message["Message-ID"] for mail in mails]
    assert len(set(message_ids)) == len(message_ids), "a delivery was mailed twice"
    [(sent,)] = await query(cluster.database_url, "SELECT count(*) FROM notification_deliveries WHERE state = 'sent'")
    assert sent == len(mails)

    # Both workers were running all along, and each two-second tick of the periodic job
    # was run by one of them only.
    ticks = [tick for worker in cluster.workers for tick in started_ticks(worker)]
    assert len(ticks) >= 3, ticks
    assert [tick for tick, count in Counter(ticks).items() if count > 1] == []
    assert all(worker.running() for worker in cluster.workers)
