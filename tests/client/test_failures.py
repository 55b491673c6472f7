"""Every way the CLI can fail ends in one line on standard error and a nonzero exit code,
never a traceback."""

from __future__ import annotations

import socket
import uuid

import httpx
from click.testing import Result
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.cases.models import CaseKey
from app.domain.crypto import PrivateKey
from app.domain.staff import Role
from tests.client.helpers import (
    Desk,
    LiveServer,
    free_port,
    invoke,
    new_key_file,
    run_process,
    serving,
)


def assert_one_line_failure(result: Result, *fragments: str, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an exception that escaped
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanwindow: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def fingerprint_of(key_path) -> str:
    return PrivateKey.from_file_text(key_path.read_text()).public_key.fingerprint


def test_a_key_file_of_another_key_pair_names_both_fingerprints(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    other = server.new_key_file("other")
    for command in (
        ["show", desk.case_id],
        ["reply", desk.case_id],
        ["grant", desk.case_id, "--to", "someone"],
    ):
        result = server.cli(
            "cases", *command, "--key", str(other), token=triage.token, input="hello\n"
        )
        assert_one_line_failure(
            result,
            f"case {desk.case_id} is sealed to your key {fingerprint_of(triage.key_path)}",
            f"{other} holds key {fingerprint_of(other)}",
        )


def test_a_missing_damaged_or_foreign_key_file_is_refused_before_anything_is_fetched(
    desk: Desk, tmp_path
) -> None:
    server, triage = desk.server, desk.triage
    damaged = tmp_path / "damaged.key"
    damaged.write_text(triage.key_path.read_text().replace("\n\n", "\n\n!!", 1))
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("just some notes\n")
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    cases = [
        (tmp_path / "absent.key", "does not exist"),
        (damaged, "damaged"),
        (not_a_key, "not a Clean Window private key file"),
        (binary, "not a Clean Window private key file"),
        (tmp_path, "cannot read key file"),
    ]
    for path, message in cases:
        result = server.cli("cases", "show", desk.case_id, "--key", str(path), token=triage.token)
        assert_one_line_failure(result, str(path), message, exit_code=2)
    result = server.cli("keys", "register", "--key", str(not_a_key), token=triage.token)
    assert_one_line_failure(result, "not a Clean Window private key file", exit_code=2)


def test_a_revoked_token_is_refused_with_a_hint_to_log_in(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    revoked = httpx.delete(
        f"{server.url}/api/v1/auth/token", headers={"Authorization": f"Bearer {triage.token}"}
    )
    assert revoked.status_code == 204
    result = server.cli("cases", "list", token=triage.token)
    assert_one_line_failure(
        result, "the server refused the token", "expired or revoked", "cleanwindow login"
    )


def test_an_unknown_token_is_refused(server: LiveServer) -> None:
    result = server.cli("cases", "list", token="not-a-real-token")
    assert_one_line_failure(result, "the server refused the token")


def test_no_token_says_how_to_get_one(server: LiveServer) -> None:
    result = server.cli("cases", "list", token=None)
    assert_one_line_failure(
        result, "no token", "CLEANWINDOW_TOKEN", "cleanwindow login", exit_code=2
    )


def test_a_wrong_password_at_login_is_one_line(server: LiveServer) -> None:
    result = server.cli("login", "nobody-here", input="a long but wrong password\n")
    assert_one_line_failure(result, "username or password")


async def test_a_role_without_access_and_an_unknown_case_are_one_line(desk: Desk) -> None:
    server = desk.server
    auditor = await server.staff(Role.AUDITOR, with_key=False)
    assert_one_line_failure(server.cli("cases", "list", token=auditor.token), "roles")
    unknown = server.cli("cases", "history", str(uuid.uuid4()), token=desk.triage.token)
    assert_one_line_failure(unknown)


async def test_a_case_another_investigator_holds_is_not_found(desk: Desk) -> None:
    server = desk.server
    investigator = await server.staff(Role.INVESTIGATOR)
    result = server.cli(
        "cases", "show", desk.case_id, "--key", str(investigator.key_path), token=investigator.token
    )
    assert_one_line_failure(result)


def test_an_unreachable_server_is_one_line_in_a_real_process(tmp_path) -> None:
    key = new_key_file(tmp_path, "anyone")
    closed = f"http://127.0.0.1:{free_port()}"  # bound a moment ago and released: nothing listens
    for args in (
        ["cases", "list"],
        ["cases", "show", str(uuid.uuid4()), "--key", str(key)],
        ["keys", "register", "--key", str(key)],
    ):
        result = run_process(*args, url=closed, token="some-token")
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith(f"cleanwindow: cannot reach the server at {closed}")
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    login = run_process("login", "alice", url=closed, input="a long enough password\n")
    assert (
        login.returncode == 1
        and "cannot reach the server" in login.stderr
        and "Traceback" not in login.stderr
    )


def test_a_server_that_accepts_but_never_answers_times_out_in_one_line() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the kernel's backlog; nothing ever replies
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = invoke("cases", "list", url=url, token="t", timeout="0.5")
    assert_one_line_failure(result, f"the server at {url} did not answer in time")


def test_a_bad_timeout_setting_is_a_configuration_error() -> None:
    result = invoke("cases", "list", url="http://127.0.0.1:1", token="t", timeout="soon")
    assert_one_line_failure(result, "CLEANWINDOW_TIMEOUT='soon'", exit_code=2)


def test_a_url_that_is_not_http_is_a_configuration_error() -> None:
    result = invoke("cases", "list", url="ftp://127.0.0.1:21", token="t")
    assert_one_line_failure(result, "http:// or https://", exit_code=2)


def test_a_server_that_is_not_clean_window_is_one_line(tmp_path) -> None:
    impostor = FastAPI()

    @impostor.get("/healthz")
    def alive() -> dict:
        return {"status": "ok"}

    @impostor.get("/api/v1/cases")
    def queue() -> dict:
        return {"items": [{"id": "not-a-case"}]}

    @impostor.get("/api/v1/cases/{case_id}/history")
    def history(case_id: str) -> HTMLResponse:
        return HTMLResponse("<html>a login portal</html>")

    @impostor.get("/api/v1/cases/{case_id}")
    def case(case_id: str) -> PlainTextResponse:
        return PlainTextResponse("upstream broke", status_code=502)

    with serving(impostor) as url:
        wrong_shape = invoke("cases", "list", url=url, token="t")
        not_json = invoke("cases", "history", str(uuid.uuid4()), url=url, token="t")
        bad_gateway = invoke(
            "cases", "transition", str(uuid.uuid4()), "acknowledge", url=url, token="t"
        )
    assert_one_line_failure(
        wrong_shape, "does not have the shape this client expects", "items.0.id"
    )
    assert_one_line_failure(not_json, "not JSON")
    assert_one_line_failure(bad_gateway, "the server answered 502 Bad Gateway")


async def test_a_tampered_content_key_in_the_database_is_one_line(desk: Desk) -> None:
    server, triage = desk.server, desk.triage
    mine = (CaseKey.case_id == uuid.UUID(desk.case_id)) & (
        CaseKey.recipient_fingerprint == fingerprint_of(triage.key_path)
    )
    engine = create_async_engine(server.database_url)
    try:
        async with engine.begin() as connection:
            sealed = bytearray(await connection.scalar(select(CaseKey.sealed_key).where(mine)))
            sealed[-1] ^= 1
            await connection.execute(update(CaseKey).where(mine).values(sealed_key=bytes(sealed)))
    finally:
        await engine.dispose()
    result = server.cli(
        "cases", "show", desk.case_id, "--key", str(triage.key_path), token=triage.token
    )
    assert_one_line_failure(
        result, "does not open with", fingerprint_of(triage.key_path), "tampered"
    )
