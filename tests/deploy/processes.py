"""Real `cleanwindow serve` and `cleanwindow worker` processes for the deployment tests, the
round-robin proxy that stands for a load balancer in front of the replicas, a client as a
reporter's browser or script behaves, and a PostgreSQL server of the test's own that it can
stop and start.

Every process is started with an environment the test gives it (production mode unless it
says otherwise), logs to a file of its own, and is killed and reaped when the test ends,
whatever happened; when the test failed, the end of each log is printed (pytest shows it
with the failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.domain import pow
from app.domain.crypto import PrivateKey
from tests.conftest import TEST_SECRET_KEY, TEST_TIMEZONE

STAFF_PASSWORD = "a staff passphrase for the replicas"
LOG_TAIL_CHARS = 6000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(database_url: str, recovery_key: PrivateKey, **extra: str) -> dict[str, str]:
    """What an operator sets for a production replica or worker (README "Configuration"),
    with a proof of work cheap enough to solve in the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k not in (
        "DATABASE_URL", "RECOVERY_PUBLIC_KEY", "POW_DIFFICULTY", "SMTP_URL", "NOTIFY_FROM", "NOTIFY_BATCH_SECONDS",
    )}
    env.update(
        CLEANWINDOW_ENV="production",
        CLEANWINDOW_SECRET_KEY=TEST_SECRET_KEY,
        CLEANWINDOW_TIMEZONE=TEST_TIMEZONE,
        DATABASE_URL=database_url,
        RECOVERY_PUBLIC_KEY=recovery_key.public_key.to_text(),
        POW_DIFFICULTY="8",
    )
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """One `cleanwindow serve` (on a port of its own) or `cleanwindow worker`."""

    kind: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [sys.executable, "-m", "app.cli", self.kind]
        if self.kind == "serve":
            command += ["--port", str(self.port)]
        with self.log_path.open("a") as log:
            log.write(f"\n--- start {self.starts + 1} ---\n")
            log.flush()
            self.process = subprocess.Popen(
                command, env=self.env, cwd=self.log_path.parent, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 120) -> None:
        """`serve`: until /readyz answers 200; `worker`: until procrastinate says it started
        (the worker logs at DEBUG)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"{self.kind} exited early with {self.process.returncode}:\n{self.log_tail()}")
            if self.kind == "serve":
                try:
                    if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            elif "start_worker" in self.log_path.read_text(errors="replace").rpartition("--- start")[2]:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.kind} was not ready after {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node does: no cleanup at all."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self) -> str:
        return self.log_text()[-LOG_TAIL_CHARS:]


# The groups running now: tests/deploy/conftest.py prints their logs when a test fails.
RUNNING: list[Processes] = []


class Processes:
    """Starts processes and guarantees that none outlives the test."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.all: list[ServiceProcess] = []

    def serve(self, name: str, env: dict[str, str]) -> ServiceProcess:
        return self._add(ServiceProcess("serve", env, self.folder / f"{name}.log"))

    def worker(self, name: str, env: dict[str, str]) -> ServiceProcess:
        return self._add(ServiceProcess("worker", env, self.folder / f"{name}.log"))

    def _add(self, process: ServiceProcess) -> ServiceProcess:
        self.all.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in self.all:
            try:
                process.stop()
            finally:
                process.kill()  # reaps; a no-op for one that exited

    def print_logs(self) -> None:
        for process in self.all:
            print(f"===== {process.log_path.name} (last {LOG_TAIL_CHARS} characters) =====")
            print(process.log_tail())


@contextmanager
def processes(folder: Path) -> Iterator[Processes]:
    started = Processes(folder)
    RUNNING.append(started)
    try:
        yield started
    except BaseException:
        started.print_logs()
        raise
    finally:
        RUNNING.remove(started)
        started.stop_all()


async def insert_staff(database_url: str, username: str, role: str, email: str | None = None) -> None:
    """A staff account with STAFF_PASSWORD hashed with production's parameters, which the
    replicas verify with (no rehash at the first login)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from app.domain.staff import PasswordHashing
    from app.staff.models import StaffUser

    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            session.add(StaffUser(username=username, role=role, password_hash=PasswordHashing().hash(STAFF_PASSWORD), email=email))
            await session.commit()
    finally:
        await engine.dispose()


async def query(database_url: str, sql: str) -> list[tuple]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(sql))]
    finally:
        await engine.dispose()


# --- the load balancer ---------------------------------------------------------------


class RoundRobinProxy:
    """A TCP proxy that sends each new client connection to the next upstream in turn,
    as a Kubernetes Service or nginx's round robin does. A connection an upstream refuses
    (a replica that is down) goes to the next one, as nginx's `proxy_next_upstream error`
    does; a replica killed in the middle of a request resets its connection, which the
    client sees. It runs on a thread of its own, so that nothing the test blocks on stalls it.

    `served` lists, in order, the upstream (its index) each connection was relayed to."""

    def __init__(self, upstream_ports: list[int]):
        self.upstream_ports = upstream_ports
        self.port = free_port()
        self.served: list[int] = []
        self._turn = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> Counter:
        with self._lock:
            return Counter(self.served)

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            relays = asyncio.all_tasks(self._loop)
            for task in relays:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*relays, return_exceptions=True))
            self._loop.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        with self._lock:
            first = self._turn
            self._turn += 1
        upstream = None
        for attempt in range(len(self.upstream_ports)):
            index = (first + attempt) % len(self.upstream_ports)
            try:
                upstream = await asyncio.open_connection("127.0.0.1", self.upstream_ports[index])
                break
            except OSError:
                continue
        if upstream is None:
            client_writer.close()
            return
        with self._lock:
            self.served.append(index)
        upstream_reader, upstream_writer = upstream

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                # A reset upstream resets the client too (SO_LINGER 0), as a load balancer
                # relaying a dead connection does; an orderly close closes it.
                try:
                    if reader.at_eof():
                        writer.write_eof() if writer.can_write_eof() else writer.close()
                    else:
                        writer.transport.abort()
                except OSError:
                    pass

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        for writer in (client_writer, upstream_writer):
            writer.close()


def fresh_connection_client(base_url: str, timeout: float = 30) -> httpx.AsyncClient:
    """A client that opens a new connection for every request, so that the proxy's
    alternation decides which replica answers each one."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0)
    )


# --- what a reporter's client does ---------------------------------------------------------


def report_body(marker: str) -> dict[str, Any]:
    return {
        "channel": "citizen",
        "category": "bribery",
        "org_unit": "construction_transport",
        "language": "en",
        "content": {
            "summary": f"Envelope before the permit {marker}",
            "details": f"The permit officer asked for an envelope before signing. {marker}",
        },
    }


async def solved_pow(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/intake/challenges")
    assert response.status_code == 201, response.text
    issued = response.json()
    return {"challenge": issued["challenge"], "nonce": pow.solve(issued["challenge"], issued["difficulty"])}


def idempotency_key() -> str:
    return secrets.token_urlsafe(24)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = json.loads(response.text)
    assert body["status"] == status
    return body


# --- a PostgreSQL server the test can stop and start ----------------------------------------


class OwnPostgres:
    """A PostgreSQL server of the test's own on a free TCP port of 127.0.0.1, from the
    binaries pgserver bundles. As root (CI, containers) PostgreSQL refuses to run, so it
    runs as the system user `pgserver`, which pgserver creates for the same reason."""

    def __init__(self) -> None:
        import pgserver

        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.folder = Path(tempfile.mkdtemp(prefix="cw-own-pg-"))
        self.pgdata = self.folder / "pgdata"
        self.socket_dir = self.folder / "socket"
        self.port = free_port()
        self.user: str | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self.bin / program), *args], check=True, user=self.user, timeout=timeout,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def init(self) -> OwnPostgres:
        self.pgdata.mkdir()
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            import pwd
            import stat

            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
            # What pgserver does before it starts a server as that user: the binaries and
            # the data folder's parents readable and traversable.
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(self.bin)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", readable)
            account = pwd.getpwnam(self.user)
            for path in (self.folder, self.pgdata, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=utf8")
        return self

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.pgdata / "server.log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}", "start",
        )

    def stop(self) -> None:
        """Fast shutdown: every session is ended at once, as in a restart for an upgrade."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop")

    def close(self) -> None:
        try:
            if (self.pgdata / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "immediate", "stop")
        finally:
            subprocess.run(["rm", "-rf", str(self.folder)], check=False)
