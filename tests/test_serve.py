"""`cleanwindow serve` as a newcomer runs it: no DATABASE_URL, an embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

USER_AGENT = "Mozilla/5.0 (SERVE-UA-MARKER)"
PASSWORD = "first admin passphrase"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def newcomer_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    env["CLEANWINDOW_DATA_DIR"] = str(data_dir)
    return env


def stop(process: subprocess.Popen, how: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
    """Ask a server to stop as an operator or an orchestrator would, and give its exit
    code; a process that does not stop in time is killed and the test fails."""
    process.send_signal(how)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def wait_until_ready(base_url: str, process: subprocess.Popen, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited early with {process.returncode}")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail("serve did not become ready in time")


def test_serve_on_the_embedded_postgres_becomes_ready_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=newcomer_env(data_dir), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        ready = wait_until_ready(base_url, process)
        assert ready.json()["status"] == "ready"
        pgdata = data_dir / "postgres"
        assert (pgdata / "postmaster.pid").exists()

        # The first staff account, created while the service runs, on the same database.
        created = subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "create", "first-admin", "--role", "admin"],
            env=newcomer_env(data_dir), cwd=tmp_path, input=PASSWORD + "\n",
            capture_output=True, text=True, timeout=120,
        )
        assert created.returncode == 0, created.stderr
        assert (pgdata / "postmaster.pid").exists(), "the CLI must not stop the server serve uses"

        login = httpx.post(
            f"{base_url}/api/v1/auth/token",
            data={"username": "first-admin", "password": PASSWORD},
            headers={"User-Agent": USER_AGENT},
        )
        assert login.status_code == 200, login.text
        assert httpx.get(f"{base_url}/nothing-here", headers={"User-Agent": USER_AGENT}).status_code == 404

        # The background jobs run inside serve in development: the deliver job has run.
        def deliver_runs() -> int:
            listed = subprocess.run(
                [sys.executable, "-m", "app.cli", "jobs", "list", "--json"],
                env=newcomer_env(data_dir), cwd=tmp_path, capture_output=True, text=True, timeout=120,
            )
            assert listed.returncode == 0, listed.stderr
            return next(job["runs"] for job in json.loads(listed.stdout) if job["name"] == "notifications.deliver")

        deadline = time.monotonic() + 60
        while deliver_runs() < 1:
            assert time.monotonic() < deadline, "no job ran inside serve"
            time.sleep(1)
    finally:
        exit_code = stop(process, signal.SIGINT)

    assert exit_code == 0
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "embedded PostgreSQL left running"

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is a JSON object
    assert any(entry["msg"] == "request" and entry["route"] == "/api/v1/auth/token" for entry in entries)
    text = log_path.read_text()
    assert "SERVE-UA-MARKER" not in text
    assert "127.0.0.1:" not in text.replace(f"http://127.0.0.1:{port}", "")
    assert PASSWORD not in text


def start_serve(data_dir: Path, cwd: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=newcomer_env(data_dir), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_ready(base_url, process)
    return process, base_url


def postmaster_running(data_dir: Path) -> bool:
    import psutil

    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    return psutil.pid_exists(int(pid_file.read_text().splitlines()[0]))


def test_sigterm_as_sent_by_docker_and_kubernetes_also_stops_the_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, _ = start_serve(data_dir, tmp_path, tmp_path / "serve.log")
    assert postmaster_running(data_dir)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not postmaster_running(data_dir)


def test_after_a_crash_the_next_run_adopts_and_then_stops_the_orphaned_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    crashed, _ = start_serve(data_dir, tmp_path, tmp_path / "serve.log")
    crashed.kill()  # no cleanup at all: PostgreSQL is orphaned with a stale handle
    crashed.wait(timeout=30)
    assert postmaster_running(data_dir)

    process, base_url = start_serve(data_dir, tmp_path, tmp_path / "serve.log")
    assert httpx.get(f"{base_url}/readyz").status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not postmaster_running(data_dir)


def test_a_data_dir_with_spaces_is_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=newcomer_env(tmp_path / "my data"), cwd=tmp_path, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "must not contain spaces" in result.stderr
    assert "Traceback" not in result.stderr
