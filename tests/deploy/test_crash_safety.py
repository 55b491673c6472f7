"""Crashes and outages with real processes: replicas killed with SIGKILL under a stream of
reports lose none of them, and a PostgreSQL restart under load is a few seconds of 503s
after which the running service recovers by itself.

Both run production's receipt KDF (no setting lowers it), so the report counts are what
two cores manage in the time, and the figures each run measured are printed (`-s`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import _admin
from tests.deploy.processes import (
    STAFF_PASSWORD,
    OwnPostgres,
    RoundRobinProxy,
    fresh_connection_client,
    idempotency_key,
    insert_staff,
    problem,
    processes,
    production_env,
    query,
    report_body,
)
from app.domain import pow

pytestmark = pytest.mark.slow

# At least this long, and at least this many kills, however slow the machine is.
KILLING_SECONDS = 20
KILLS = 6
REPORTERS = 3
REPORTER_PAUSE = 0.4
# Longer than any answer may take: a request still unanswered then is a hang.
REQUEST_TIMEOUT = 20


@dataclass
class Stream:
    """What the reporters' clients saw."""

    accepted: list[tuple[str, str, str]] = field(default_factory=list)  # (key, marker, receipt)
    statuses: Counter = field(default_factory=Counter)
    transport_errors: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    # Retries answered from the stored report: its first try was committed, but the
    # replica died before the answer left.
    replayed: int = 0


async def retrying(stream: Stream, send) -> httpx.Response:
    """What a reporter's client does: a dropped connection or a 503 is tried again (the
    503 after its Retry-After, capped for the test); any other answer is final."""
    while True:
        try:
            response = await send()
        except httpx.TimeoutException as error:
            stream.unexpected.append(f"no answer in {REQUEST_TIMEOUT} s: {error!r}")
            raise
        except httpx.TransportError as error:
            stream.transport_errors[type(error).__name__] += 1
            await asyncio.sleep(0.2)
            continue
        stream.statuses[response.status_code] += 1
        if response.status_code == 503:
            await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), 1.0))
            continue
        return response


async def reporter(url: str, stream: Stream, stop: asyncio.Event) -> None:
    """Sends reports one after the other, each with its own proof of work and its own
    Idempotency-Key, which every retry of that report repeats."""
    async with fresh_connection_client(url, timeout=REQUEST_TIMEOUT) as client:
        while not stop.is_set():
            key = idempotency_key()
            marker = key[:16]
            challenge = await retrying(stream, lambda: client.post("/api/v1/intake/challenges"))
            if challenge.status_code != 201:
                stream.unexpected.append(f"challenge: {challenge.status_code} {challenge.text}")
                continue
            issued = challenge.json()
            body = {
                **report_body(marker),
                "pow": {"challenge": issued["challenge"], "nonce": pow.solve(issued["challenge"], issued["difficulty"])},
            }
            submitted = await retrying(
                stream, lambda: client.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key})
            )
            if submitted.status_code == 201:
                stream.accepted.append((key, marker, submitted.json()["receipt"]))
                stream.replayed += submitted.headers.get("idempotent-replayed") == "true"
            else:
                stream.unexpected.append(f"report: {submitted.status_code} {submitted.text}")
            # A pause between reports: the stream stays steady through the kills, and the
            # receipts checked afterwards (production's KDF, ~5 a second here) stay few.
            await asyncio.sleep(REPORTER_PAUSE)


async def test_replicas_killed_again_and_again_under_a_stream_of_reports_lose_none(
    fresh_database_url, recovery_key, tmp_path
) -> None:
    # One receipt hash at a time per replica (two cores for two replicas), so that a
    # restarting replica gets the CPU to start in a few seconds.
    env = production_env(fresh_database_url, recovery_key, CLEANWINDOW_INTAKE__MAX_CONCURRENT_RECEIPT_HASHES="1")
    with processes(tmp_path) as group:
        replicas = [group.serve("replica-a", env), group.serve("replica-b", env)]
        for replica in replicas:
            replica.wait_ready()
        with RoundRobinProxy([replica.port for replica in replicas]) as proxy:
            stream = Stream()
            stop = asyncio.Event()
            reporters = [asyncio.create_task(reporter(proxy.url, stream, stop)) for _ in range(REPORTERS)]
            stop_killing = threading.Event()

            restarts: list[float] = []

            def kill_in_turn() -> int:
                """SIGKILL a replica, in turn, a second after the last one killed is ready
                again (so one always runs), and start it again at once."""
                kills = 0
                deadline = time.monotonic() + KILLING_SECONDS
                while (time.monotonic() < deadline or kills < KILLS) and not stop_killing.is_set():
                    time.sleep(1)
                    victim = replicas[kills % 2]
                    killed_at = time.monotonic()
                    victim.kill()
                    kills += 1
                    victim.start()
                    victim.wait_ready()
                    restarts.append(time.monotonic() - killed_at)
                return kills

            try:
                killing_started = time.monotonic()
                kills = await asyncio.to_thread(kill_in_turn)
                killing_seconds = time.monotonic() - killing_started
            finally:
                stop_killing.set()
                stop.set()
                await asyncio.gather(*reporters)
            served = proxy.counts()

            assert stream.unexpected == []
            assert [status for status in stream.statuses if status >= 500 and status != 503] == []
            assert kills >= KILLS
            assert served[0] > 0 and served[1] > 0
            assert len(stream.accepted) >= 10, stream

            # Every report that was answered 201 opens with its receipt: none was lost. Through
            # the proxy again, so both replicas (one receipt hash at a time each) share the work,
            # and a session opened on one replica reads the report on the other.
            checking_started = time.monotonic()
            async with fresh_connection_client(proxy.url, timeout=60) as client:
                semaphore = asyncio.Semaphore(4)

                async def opens(marker: str, receipt: str) -> bool:
                    async with semaphore:
                        session = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
                        if session.status_code != 201:
                            return False
                        report = await client.get(
                            "/api/v1/reporter/report", headers={"Authorization": f"Bearer {session.json()['token']}"}
                        )
                        return report.status_code == 200 and marker in report.json()["content"]["summary"]

                opened = await asyncio.gather(*(opens(marker, receipt) for _, marker, receipt in stream.accepted))
            checking_seconds = time.monotonic() - checking_started
        lost = opened.count(False)
        assert lost == 0

        # One case per report sent, whatever its retries: no duplicate, no orphan.
        [(cases, keyed, distinct)] = await query(
            fresh_database_url,
            "SELECT count(*), count(idempotency_digest), count(DISTINCT idempotency_digest) FROM cases",
        )
        assert len({key for key, _, _ in stream.accepted}) == len(stream.accepted)
        assert cases == keyed == distinct == len(stream.accepted)
        print(
            f"\ncrash safety: {len(stream.accepted)} reports accepted in {killing_seconds:.0f} s, {kills} SIGKILLs, "
            f"lost {lost}, {stream.replayed} answered by a replay, statuses {dict(stream.statuses)}, dropped connections {dict(stream.transport_errors)}, "
            f"requests per replica {dict(served)}, kill to ready again {min(restarts):.1f}-{max(restarts):.1f} s, "
            f"receipts checked in {checking_seconds:.0f} s"
        )


@dataclass
class Timeline:
    """Every answer the load got during the restart: (sent at, seconds taken, what)."""

    answers: list[tuple[float, float, str, httpx.Response | None]] = field(default_factory=list)

    def of(self, what: str) -> list[tuple[float, float, httpx.Response | None]]:
        return [(at, took, response) for at, took, name, response in self.answers if name == what]


async def database_restart_load(url: str, token: str, timeline: Timeline, stop: asyncio.Event) -> None:
    async def loop(name: str, send, pause: float) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = await send(client)
                except httpx.TransportError:
                    response = None
                timeline.answers.append((started, time.monotonic() - started, name, response))
                await asyncio.sleep(pause)

    def me(client: httpx.AsyncClient):
        return client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})

    async def report(client: httpx.AsyncClient) -> httpx.Response:
        challenge = await client.post("/api/v1/intake/challenges")
        if challenge.status_code != 201:
            return challenge
        issued = challenge.json()
        solution = {"challenge": issued["challenge"], "nonce": pow.solve(issued["challenge"], issued["difficulty"])}
        return await client.post("/api/v1/reports", json={**report_body("restart"), "pow": solution})

    await asyncio.gather(
        loop("readyz", lambda client: client.get("/readyz"), 0.1),
        loop("staff", me, 0.05),
        loop("staff", me, 0.05),
        loop("report", report, 0.2),
    )


async def test_a_database_restart_under_load_is_a_few_seconds_of_503_and_the_service_recovers_alone(
    recovery_key, tmp_path
) -> None:
    database = OwnPostgres().init()
    try:
        database.start()
        await _admin(database.admin_url, "CREATE DATABASE cleanwindow")
        url = database.url("cleanwindow")
        with processes(tmp_path) as group:
            service = group.serve("replica", production_env(url, recovery_key))
            service.wait_ready()
            pid = service.process.pid
            await insert_staff(url, "reader", "investigator")
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
                login = await client.post("/api/v1/auth/token", data={"username": "reader", "password": STAFF_PASSWORD})
                assert login.status_code == 200, login.text
                token = login.json()["access_token"]

            timeline = Timeline()
            stop = asyncio.Event()
            load = asyncio.create_task(database_restart_load(service.base_url, token, timeline, stop))
            try:
                await asyncio.sleep(2)
                stopping = time.monotonic()
                await asyncio.to_thread(database.stop)
                stopped = time.monotonic()
                await asyncio.sleep(4)
                restarting = time.monotonic()
                await asyncio.to_thread(database.start)
                started = time.monotonic()
                deadline = started + 20
                while not any(
                    at > started and response is not None and response.status_code == 200
                    for at, _, response in timeline.of("staff")
                ):
                    assert time.monotonic() < deadline, "the service did not recover within 20 s"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2)
            finally:
                stop.set()
                await load

            # A restart while no request runs (at night, say): the connections pooled before
            # it are all dead, and the next requests must get new ones, not 503s.
            await asyncio.to_thread(database.stop)
            await asyncio.to_thread(database.start)
            async with httpx.AsyncClient(base_url=service.base_url, timeout=REQUEST_TIMEOUT) as client:
                headers = {"Authorization": f"Bearer {token}"}
                sequential = [await client.get("/api/v1/users/me", headers=headers) for _ in range(5)]
                concurrent = await asyncio.gather(*(client.get("/api/v1/users/me", headers=headers) for _ in range(12)))
            quiet_restart = Counter(response.status_code for response in sequential + list(concurrent))
            assert quiet_restart == {200: 17}, quiet_restart

            assert service.process.pid == pid and service.running() and service.starts == 1

        everything = timeline.answers
        # Never a 500, never a hang: every request was answered, and quickly.
        assert [response for *_, response in everything if response is None] == []
        assert [response.status_code for *_, response in everything if response.status_code >= 500 and response.status_code != 503] == []
        slowest = max(took for _, took, _, _ in everything)
        assert slowest < 5, f"a request took {slowest:.1f} s"

        # While the database was down, the service said so: 503, Retry-After, a problem.
        down = [
            (at, response) for at, _, name, response in everything
            if stopped < at < restarting and name != "readyz"
        ]
        assert down and all(response.status_code == 503 for _, response in down), Counter(
            response.status_code for _, response in down
        )
        for _, response in down:
            body = problem(response, 503)
            assert body["type"] == "urn:cleanwindow:problem:database-unavailable"
            assert int(response.headers["retry-after"]) > 0
        not_ready = [response for at, _, response in timeline.of("readyz") if stopped < at < restarting]
        assert not_ready and all(problem(response, 503) for response in not_ready)

        # It recovered alone, and from then on every request succeeded.
        first_ok = min(at for at, _, response in timeline.of("staff") if at > started and response.status_code == 200)
        after = [response for at, _, _, response in everything if at > first_ok + 0.5]
        assert after and all(response.status_code in (200, 201) for response in after), Counter(
            response.status_code for response in after
        )
        reports = [response for _, _, response in timeline.of("report") if response.status_code == 201]
        unavailable = [at for at, _, _, response in everything if response.status_code == 503]
        print(
            f"\ndatabase restart: {len(everything)} requests, {len(reports)} reports accepted; "
            f"pg_ctl stop -m fast took {stopped - stopping:.1f} s, down {restarting - stopped:.1f} s, "
            f"pg_ctl start took {started - restarting:.1f} s; "
            f"503s for {max(unavailable) - min(unavailable):.1f} s ({len(unavailable)} answers); "
            f"first staff 200 {first_ok - started:.2f} s after PostgreSQL was up; slowest answer {slowest:.2f} s"
        )
    finally:
        database.close()
