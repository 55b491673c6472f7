"""Running the investigator CLI against a real server: uvicorn on a free port, staff made
through the admin API, reports through intake."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from click.testing import Result
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from app.cli import cli, write_private_key
from app.domain.crypto import PrivateKey
from app.domain.staff import PasswordHashing, Role
from app.staff.models import StaffUser
from tests.intake.helpers import report_body, reporter_headers, submit_ok

PASSWORD = "a long enough passphrase for tests"
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[str]:
    """The app behind uvicorn in a thread of its own, until the block ends."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="cleanwindow-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not answer /healthz in time"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)


@dataclass
class Officer:
    username: str
    role: Role
    token: str = ""
    key_path: Path | None = None


def invoke(
    *args: str, url: str, token: str | None, input: str | None = None, timeout: str | None = None
) -> Result:
    """The CLI in this process. None unsets a variable, so nothing from the developer's own
    shell leaks in."""
    env = {"CLEANWINDOW_URL": url, "CLEANWINDOW_TOKEN": token, "CLEANWINDOW_TIMEOUT": timeout}
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def run_process(
    *args: str, url: str, token: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a process of its own, the way a person runs it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CLEANWINDOW_")}
    env["CLEANWINDOW_URL"] = url
    if token is not None:
        env["CLEANWINDOW_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=input,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def new_key_file(folder: Path, name: str) -> Path:
    path = folder / f"{name}-{secrets.token_hex(3)}.key"
    write_private_key(path, PrivateKey.generate())
    return path


class LiveServer:
    """A running service and the CLI pointed at it."""

    def __init__(self, url: str, database_url: str, admin_token: str, key_folder: Path):
        self.url = url
        self.database_url = database_url
        self.admin_token = admin_token
        self.key_folder = key_folder

    def cli(
        self, *args: str, token: str | None = None, input: str | None = None, url: str | None = None
    ) -> Result:
        return invoke(*args, url=url or self.url, token=token, input=input)

    def ok(self, *args: str, officer: Officer, input: str | None = None) -> str:
        result = self.cli(*args, token=officer.token, input=input)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result.stdout

    def new_key_file(self, name: str) -> Path:
        return new_key_file(self.key_folder, name)

    async def staff(self, role: Role, *, with_key: bool = True) -> Officer:
        """An account made by the admin over the API, logged in with `cleanwindow login`,
        its key pair made and registered with `cleanwindow keys generate/register`."""
        officer = Officer(f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}", role)
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post(
                "/api/v1/users",
                json={"username": officer.username, "role": role.value, "password": PASSWORD},
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
        assert response.status_code == 201, response.text
        login = self.cli("login", officer.username, input=PASSWORD + "\n")
        assert login.exit_code == 0, login.stderr
        officer.token = login.stdout.strip()
        if with_key:
            officer.key_path = self.key_folder / f"{officer.username}.key"
            generated = self.cli("keys", "generate", "--out", str(officer.key_path))
            assert generated.exit_code == 0, generated.stderr
            self.ok("keys", "register", "--key", str(officer.key_path), officer=officer)
        return officer

    async def report(self, marker: str, **overrides) -> str:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await submit_ok(client, report_body(marker, **overrides))

    async def reporter(self, receipt: str) -> dict[str, str]:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await reporter_headers(client, receipt)


async def create_admin(database_url: str, hashing: PasswordHashing) -> str:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            session.add(
                StaffUser(
                    username="first-admin",
                    role=Role.ADMIN.value,
                    password_hash=hashing.hash(PASSWORD),
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    return "first-admin"


@dataclass
class Desk:
    """A triage officer with a registered key, and one report sealed to them."""

    server: LiveServer
    triage: Officer
    receipt: str
    marker: str
    case_id: str
