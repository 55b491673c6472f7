"""Logs are JSON with a request id and never carry who called."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.platform.logging import JsonFormatter, PrivacyAwareStreamHandler, reporter_facing_var
from tests.intake.helpers import report_body, reporter_headers, submit_ok

CLIENT_ADDRESS = "203.0.113.77"
USER_AGENT = "Mozilla/5.0 (UA-MARKER-5d1c)"
IDENTIFYING_HEADERS = {
    "User-Agent": USER_AGENT,
    "X-Forwarded-For": CLIENT_ADDRESS,
    "X-Real-IP": CLIENT_ADDRESS,
    "Forwarded": f"for={CLIENT_ADDRESS}",
}
MARKER = "REPORT-CONTENT-MARKER-91b2"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)


def entries(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_staff_requests_get_one_json_access_line_with_the_request_id(
    client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    response = await client.get("/healthz", headers=IDENTIFYING_HEADERS)
    lines = [entry for entry in entries(captured_logs) if entry["msg"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/healthz", 200)


async def test_no_client_address_or_user_agent_reaches_the_logs(
    client: httpx.AsyncClient, captured_logs: io.StringIO, staff
) -> None:
    await client.get("/healthz", headers=IDENTIFYING_HEADERS)
    await client.post("/api/v1/auth/token", data={"username": "x-y-z", "password": "p"}, headers=IDENTIFYING_HEADERS)
    await client.get("/report", headers=IDENTIFYING_HEADERS)
    await client.get("/no/such/page", headers=IDENTIFYING_HEADERS)
    text = captured_logs.getvalue()
    assert text  # something was logged, so the absence below means something
    assert CLIENT_ADDRESS not in text
    assert "127.0.0.1" not in text  # the ASGI client address the test transport reports
    assert "UA-MARKER" not in text


async def test_reporter_facing_requests_leave_no_access_line(
    client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    for path in ("/", "/report", "/status", "/api/v1/reports", "/api/v1/reporter/report", "/typo"):
        await client.get(path, headers=IDENTIFYING_HEADERS)
    # A drill participant is treated like a reporter: no line says when a code was used.
    for path in ("/api/v1/participant/scenario", "/api/v1/participant/no-report"):
        await client.post(path, json={"code": "ABCD-EFGH-JKMN"}, headers=IDENTIFYING_HEADERS)
    # Nor does a reporter's answer to a request for their identity.
    await client.post(f"/api/v1/reporter/identity-requests/{uuid.uuid4()}", json={"answer": "consent"}, headers=IDENTIFYING_HEADERS)
    assert [entry for entry in entries(captured_logs) if entry["msg"] == "request"] == []


async def test_staff_identity_paths_keep_their_access_line(client: httpx.AsyncClient, captured_logs: io.StringIO) -> None:
    """Custodians' and supervisors' identity steps are staff acts, logged like the case API."""
    await client.get("/api/v1/identity-requests/pending")
    lines = [entry for entry in entries(captured_logs) if entry["msg"] == "request"]
    assert [entry.get("route") for entry in lines] == ["/api/v1/identity-requests/pending"]


async def test_errors_on_reporter_paths_keep_the_code_location_but_not_the_data_or_the_minute(
    app, client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    @app.post("/api/v1/reporter/_explode")
    async def explode() -> None:
        raise ValueError(f"could not process {MARKER}")

    response = await client.post("/api/v1/reporter/_explode", headers=IDENTIFYING_HEADERS)
    assert response.status_code == 500
    [error] = [entry for entry in entries(captured_logs) if entry["level"] == "ERROR"]
    assert error["exc_type"] == "ValueError"
    assert "explode" in error["traceback"]
    assert MARKER not in captured_logs.getvalue()
    assert "exc_message" not in error
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000Z", error["ts"])
    assert error["request_id"] == response.headers["x-request-id"]


async def test_errors_on_staff_paths_keep_the_message(
    app, client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    @app.post("/api/v1/cases/_explode")
    async def explode() -> None:
        raise ValueError("staff-side failure detail")

    await client.post("/api/v1/cases/_explode")
    [error] = [entry for entry in entries(captured_logs) if entry["level"] == "ERROR"]
    assert error["exc_message"] == "staff-side failure detail"


@pytest.fixture
def sql_echo() -> Iterator[None]:
    """Debug's SQL echo, as `configure_logging` turns it on (before the test's connection
    is opened: a connection decides whether to echo when it is created)."""
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    previous_level = engine_logger.level
    engine_logger.setLevel(logging.INFO)
    yield
    engine_logger.setLevel(previous_level)


DURATION = re.compile(r"cached since|generated in|\d(?:\.\d+)?(?:e-?\d+)?s\b")


async def test_debug_sql_echo_times_nothing_on_reporter_paths(
    sql_echo: None, client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    """SQLAlchemy follows each statement with "[cached since 1.335s ago]", timed from the
    statement's first run: held and coarsened or not, such a line on a reporter path
    would give the gap to an earlier request to the millisecond."""
    reporter_requests = set()
    for n in range(2):  # the second run of each statement is "cached since" the first
        receipt = await submit_ok(client, report_body(f"echo-{n}"))
        headers = await reporter_headers(client, receipt)
        response = await client.get("/api/v1/reporter/report", headers=headers)
        assert response.status_code == 200
        reporter_requests.add(response.headers["x-request-id"])
    staff_requests = set()
    for _ in range(2):
        response = await client.post("/api/v1/auth/token", data={"username": "nobody-here", "password": "p"})
        staff_requests.add(response.headers["x-request-id"])

    echoed = [entry for entry in entries(captured_logs) if entry["logger"] == "sqlalchemy.engine.Engine"]
    on_reporter_paths = [entry["msg"] for entry in echoed if entry.get("request_id") in reporter_requests]
    assert any("SELECT" in msg for msg in on_reporter_paths)  # the statements are still echoed
    assert [msg for msg in on_reporter_paths if DURATION.search(msg)] == []
    # Staff paths keep the full echo, statistics included.
    on_staff_paths = [entry["msg"] for entry in echoed if entry.get("request_id") in staff_requests]
    assert any("SELECT" in msg for msg in on_staff_paths)
    assert any("cached since" in msg for msg in on_staff_paths)


@pytest.mark.parametrize(("reporter_facing", "expected"), [(False, "12:34:56.789Z"), (True, "12:00:00.000Z")])
def test_timestamps_are_coarsened_only_on_reporter_paths(reporter_facing: bool, expected: str) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", (), None)
    record.created = datetime(2026, 11, 21, 12, 34, 56, 789000, tzinfo=UTC).timestamp()
    token = reporter_facing_var.set(reporter_facing)
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        reporter_facing_var.reset(token)
    assert entry["ts"] == "2026-11-21T" + expected


SOURCE_PATTERNS = [
    r"request\.client",
    r"scope\[.client.\]",
    r"\.get\(.client.\)",
    r"(?i)x-forwarded-for",
    r"(?i)x-real-ip",
    r"(?i)remote_addr",
    r"(?i)user[-_]agent",
    r"access_log\s*=\s*True",
]


def test_no_code_in_the_service_reads_or_logs_the_client_address(project_root: Path) -> None:
    offenders = [
        f"{path.relative_to(project_root)}:{number}: {line.strip()}"
        for path in sorted((project_root / "app").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for pattern in SOURCE_PATTERNS
        if re.search(pattern, line) and not line.strip().startswith("#")
    ]
    assert offenders == []


def _log_with(handler: logging.Handler, message: str, *, reporter_facing: bool) -> None:
    logger = logging.getLogger(f"test.privacy.{secrets.token_hex(4)}")
    logger.propagate = False
    logger.addHandler(handler)
    token = reporter_facing_var.set(reporter_facing)
    try:
        logger.error(message)
    finally:
        reporter_facing_var.reset(token)
        logger.removeHandler(handler)


@pytest.fixture
def held() -> Iterator[tuple[PrivacyAwareStreamHandler, io.StringIO]]:
    stream = io.StringIO()
    handler = PrivacyAwareStreamHandler(stream, delay_seconds=3600)
    handler.setFormatter(JsonFormatter())
    yield handler, stream
    handler.close()


def test_reporter_facing_lines_are_held_back_and_released_shuffled_in_a_batch(held) -> None:
    """Log drivers stamp each line with the moment it is written; reporter-facing lines
    must therefore not be written when their request happens."""
    handler, stream = held
    _log_with(handler, "staff event", reporter_facing=False)
    for n in range(20):
        _log_with(handler, f"reporter event {n}", reporter_facing=True)
    assert [entry["msg"] for entry in entries(stream)] == ["staff event"]

    handler.release_held()
    released = [entry["msg"] for entry in entries(stream)][1:]
    assert sorted(released) == sorted(f"reporter event {n}" for n in range(20))
    assert released != [f"reporter event {n}" for n in range(20)]  # 1 in 20! to fail by chance


def test_held_lines_are_dropped_when_the_process_stops(held) -> None:
    # Written at shutdown, they would date their requests to between the last boundary
    # and the moment of the restart.
    handler, stream = held
    _log_with(handler, "reporter event", reporter_facing=True)
    _log_with(handler, "staff event", reporter_facing=False)
    handler.close()  # logging.shutdown() calls this at exit
    assert [entry["msg"] for entry in entries(stream)] == ["staff event"]


def test_a_flood_of_held_lines_is_capped_and_counted(held) -> None:
    handler, stream = held
    handler.MAX_HELD = 5
    for n in range(8):
        _log_with(handler, f"reporter event {n}", reporter_facing=True)
    handler.release_held()
    logged = entries(stream)
    assert len(logged) == 6
    assert logged[-1] == {"level": "WARNING", "msg": "reporter-facing log entries dropped", "count": 3}


def test_with_no_delay_every_line_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = PrivacyAwareStreamHandler(stream, delay_seconds=0)
    handler.setFormatter(JsonFormatter())
    _log_with(handler, "reporter event", reporter_facing=True)
    assert [entry["msg"] for entry in entries(stream)] == ["reporter event"]
