"""The benchmark scripts keep working (tiny numbers; they measure nothing here)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_end_to_end_on_its_own_server(project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"),
         "--requests", "5", "--login-requests", "2", "--submit-requests", "2",
         "--repeats", "1", "--concurrency", "2"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert len(rows) == 6
    assert rows[0].startswith("| healthz") and rows[-2].startswith("| submit:") and rows[-1].startswith("| submit with a contact")
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout
    # The submissions solved easy challenges (the proof of work is not what is measured),
    # and the output says which difficulty they were.
    assert "proof-of-work difficulty 8 bits in every run" in result.stdout


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.org", "http://192.168.1.2"])
def test_the_benchmark_refuses_anything_but_loopback(project_root: Path, url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"), "--url", url,
         "--username", "u", "--password", "p"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--scenarios", "healthz,nonsense"], "unknown scenario"),
        (["--url", "http://127.0.0.1:9", "--pow-difficulty", "8"], "own server"),
        (["--pow-difficulty", "30"], "--pow-difficulty"),
    ],
)
def test_the_benchmark_refuses_bad_arguments_before_starting_anything(
    project_root: Path, arguments: list[str], complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "http_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr


async def _database_exists(server_url: str, name: str) -> bool:
    engine = create_async_engine(make_url(server_url).set(drivername="postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name})
            return found == 1
    finally:
        await engine.dispose()


def test_the_case_benchmark_runs_end_to_end_on_a_small_queue(project_root: Path) -> None:
    # The suite's server when it has one, else the bench's own embedded PostgreSQL.
    server = os.environ.get("TEST_DATABASE_URL")
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "cases_bench.py"),
         "--cases", "3000", "--requests", "3", "--transitions", "3", "--baseline-requests", "5",
         "--repeats", "1", "--concurrency", "2", "--transition-concurrency", "4",
         *(["--database-url", server] if server else [])],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert len(rows) == 9, result.stdout
    assert rows[0].startswith("| healthz") and rows[-1].startswith("| POST /cases/{id}/transitions")
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout
    assert "3,000 generated cases" in result.stdout
    # Four acknowledges of one case at once: one wins, three are told the case moved on.
    assert "1 x 200, 3 x 409 (3 stale-version) -> OK" in result.stdout
    assert re.search(r"consistency: .* -> OK$", result.stdout, re.MULTILINE), result.stdout
    # Every queue query shape was explained.
    assert result.stdout.count("rows of cases read") == 8, result.stdout
    created = re.search(r"created database (cw_bench_[0-9a-f]+)", result.stderr)
    assert created and f"dropped database {created.group(1)}" in result.stderr
    if server:
        assert not asyncio.run(_database_exists(server, created.group(1)))


def test_the_drills_benchmark_runs_end_to_end_on_a_small_campaign(project_root: Path) -> None:
    server = os.environ.get("TEST_DATABASE_URL")
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "drills_bench.py"),
         "--real", "1000", "--drill-cases", "12", "--requests", "3", "--inject-requests", "2",
         "--repeats", "1", "--close-runs", "1", "--concurrency", "2",
         *(["--database-url", server] if server else [])],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert [row.split("|")[1].split(":")[0].split(" (")[0].strip() for row in rows] == [
        "healthz", "GET /stats", "GET /drills/{id}/scorecard, JSON", "GET /drills/{id}/scorecard, CSV",
        "submit", "inject",
    ], result.stdout
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout
    assert "a blind campaign of 12 drill cases" in result.stdout
    assert re.search(r"close \(freeze the scorecard, purge 12 drill cases, audit\): median \d+ ms", result.stdout)
    created = re.search(r"created database (cw_drills_bench_[0-9a-f]+)", result.stderr)
    assert created and f"dropped database {created.group(1)}" in result.stderr
    if server:
        assert not asyncio.run(_database_exists(server, created.group(1)))


@pytest.mark.parametrize(
    "arguments",
    [["--database-url", "postgresql://postgres@10.0.0.5:5432/postgres"], ["--real", "10"], ["--close-runs", "99"]],
)
def test_the_drills_benchmark_refuses_bad_arguments_before_starting_anything(
    project_root: Path, arguments: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "drills_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0 and "created database" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--database-url", "postgresql://postgres@10.0.0.5:5432/postgres"], "loopback"),
        (["--database-url", "postgresql://postgres@db.example.org/postgres"], "loopback"),
        (["--cases", "10"], "--cases"),
        (["--scenarios", "first,nonsense"], "unknown scenario"),
        (["--transition-concurrency", "1"], "--transition-concurrency"),
    ],
)
def test_the_case_benchmark_refuses_bad_arguments_before_starting_anything(
    project_root: Path, arguments: list[str], complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "cases_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_cli_benchmark_times_every_command_against_a_bare_python(project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "cli_bench.py"), "--repeats", "1"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "command" not in line]
    assert len(rows) == 6, result.stdout
    assert rows[0].startswith("| `python -c pass` (baseline)") and rows[1].startswith("| `cleanwindow --help`")
    # Every command did what it should (help printed, the server reported down, a key made).
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--scenarios", "help,nonsense"], "unknown scenario"),
        (["--repeats", "0"], "--repeats"),
        (["--command", "/nonexistent/cleanwindow"], "not an executable"),
    ],
)
def test_the_cli_benchmark_refuses_bad_arguments(project_root: Path, arguments: list[str], complaint: str) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "cli_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_staff_ceiling_sends_the_products_sql_and_answers_the_same_json(project_root: Path) -> None:
    # bench/staff_ceiling.py is the yardstick of the staff paths: if the product's SQL
    # changes, the ceiling must change with it, or the ratios compare different work.
    server = os.environ.get("TEST_DATABASE_URL")
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "staff_sql_check.py"), "--cases", "1000",
         *(["--database-url", server] if server else [])],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for path in ("queue", "detail", "detail-assigned", "history", "audit", "stats"):
        assert any(line.startswith(f"{path}: ") and "same SQL, same JSON" in line for line in lines), result.stdout
    for path in ("transition", "message", "grant"):
        assert any(line.startswith(f"{path}: ") and "same SQL" in line for line in lines), result.stdout
    assert "audit chain after both: verifies" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--database-url", "postgresql://postgres@10.0.0.5:5432/postgres"], "loopback"),
        (["--cases", "10"], "--cases"),
        (["--paths", "queue,nonsense"], "unknown path"),
    ],
)
def test_the_staff_benchmark_refuses_bad_arguments_before_starting_anything(
    project_root: Path, arguments: list[str], complaint: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "staff_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_receipt_benchmark_compares_intake_with_the_bare_kdf(project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "receipt_bench.py"),
         "--slots", "1", "2", "--rounds", "1", "--seconds", "0.3", "--submissions", "2"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=project_root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2"], result.stdout
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), result.stdout  # every report was a 201


@pytest.mark.parametrize(("arguments", "complaint"), [(["--slots", "0"], "--slots"), (["--rounds", "0"], "--rounds")])
def test_the_receipt_benchmark_refuses_bad_arguments(project_root: Path, arguments: list[str], complaint: str) -> None:
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "receipt_bench.py"), *arguments],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert complaint in result.stderr
