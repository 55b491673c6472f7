"""The product's first two promises, tested as an attacker would meet them: a database
dump reveals nothing a reporter wrote or who they are, and neither do the logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, select, update

from app.cases.models import Case, CaseKey, CaseMessage
from app.domain import crypto
from app.domain.receipts import parse_receipt
from app.domain.staff import Role
from app.identity.models import CaseIdentity, IdentityKey
from app.staff.models import StaffUser
from tests.conftest import STRONG_PASSWORD, StaffFactory
from tests.drills.helpers import campaign_body
from tests.identity.helpers import REASON, Office, answer_as_reporter
from tests.intake.helpers import idempotency_key, report_body, reporter_headers, solved_pow, submit_ok

CLIENT_ADDRESS = "203.0.113.77"
FORWARDED_ADDRESS = "198.51.100.23"
USER_AGENT = "Mozilla/5.0 (UA-MARKER-7f3e)"
IDENTIFYING_HEADERS = {
    "User-Agent": USER_AGENT,
    "X-Forwarded-For": FORWARDED_ADDRESS,
    "X-Real-IP": FORWARDED_ADDRESS,
    "Forwarded": f"for={FORWARDED_ADDRESS}",
}


def pg_dump_binary() -> str:
    """pgserver ships PostgreSQL 16's pg_dump, which can dump the embedded server and any
    older one; fall back to the system's."""
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    found = str(bundled) if bundled.exists() else shutil.which("pg_dump")
    if found is None:
        pytest.fail("no pg_dump available")
    return found


def pg_dump(async_url: str) -> str:
    url = make_url(async_url)
    env = {**os.environ, "PGUSER": url.username or "postgres", "PGDATABASE": url.database or ""}
    host = url.host or url.query.get("host")
    if host:
        env["PGHOST"] = host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.password:
        env["PGPASSWORD"] = url.password
    result = subprocess.run(
        [pg_dump_binary(), "--data-only", "--no-owner"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def dump_bytes(dump: str) -> bytes:
    """The dump as text plus every bytea value decoded, so that plaintext hidden in a
    binary column would be found too."""
    decoded = b"".join(bytes.fromhex(hex_digits) for hex_digits in re.findall(r"\\\\x((?:[0-9a-f]{2})+)", dump))
    return dump.encode() + b"\n" + decoded


@pytest.mark.slow
async def test_a_database_dump_reveals_no_report_receipt_or_reporter(
    live, recovery_key: crypto.PrivateKey, strong_password_hash: str
) -> None:
    client = live.client
    # A triage officer with a registered key, so reports are sealed to staff too.
    officer_key = crypto.PrivateKey.generate()
    async with live.sessionmaker() as session:
        officer = StaffUser(username="triage-dump", role=Role.TRIAGE.value, password_hash=strong_password_hash)
        session.add(officer)
        await session.commit()
    token = (await client.post("/api/v1/auth/token", data={"username": "triage-dump", "password": STRONG_PASSWORD})).json()["access_token"]
    registered = await client.put(
        "/api/v1/users/me/public-key", json={"public_key": officer_key.public_key.to_text()},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert registered.status_code == 200

    markers = [f"MARKER-{uuid.uuid4().hex[:12]}" for _ in range(6)]
    receipts = []
    for index, marker in enumerate(markers[:3]):
        body = report_body(marker, contact={"name": f"Name {markers[3 + index]}", "email": f"{markers[3 + index]}@example.org"})
        receipts.append(await submit_ok(client, body, headers={**IDENTIFYING_HEADERS, "Idempotency-Key": idempotency_key()}))
    mailbox = {**await reporter_headers(client, receipts[0]), **IDENTIFYING_HEADERS}
    message_marker, file_marker = f"MSG-{uuid.uuid4().hex[:12]}", f"FILE-{uuid.uuid4().hex[:12]}"
    assert (await client.post("/api/v1/reporter/messages", json={"body": message_marker}, headers=mailbox)).status_code == 201
    uploaded = await client.post(
        "/api/v1/reporter/attachments",
        files={"file": (f"{file_marker}.txt", f"evidence {file_marker} ".encode() * 5000, "text/plain")},
        headers=mailbox,
    )
    assert uploaded.status_code == 201

    dump = pg_dump(live.url)
    assert "COPY public.cases" in dump and "COPY public.attachment_chunks" in dump  # the dump has the data
    haystack = dump_bytes(dump)
    secrets_to_find = markers + [message_marker, file_marker, CLIENT_ADDRESS, FORWARDED_ADDRESS, "UA-MARKER-7f3e"]
    for receipt in receipts:
        secrets_to_find += [receipt, parse_receipt(receipt)]
    for secret in secrets_to_find:
        assert secret.encode() not in haystack, f"{secret} found in the database dump"
    # A check that the search could have failed: the unsealed metadata is in the dump.
    assert b"construction_transport" in haystack

    # Every report opens with the staff officer's private key and with the recovery key,
    # and with nothing else; a changed bit or a ciphertext moved to another case fails.
    async with live.sessionmaker() as session:
        cases = (await session.scalars(select(Case).order_by(Case.id))).all()
        keys = (await session.scalars(select(CaseKey))).all()
    opened = set()
    for case in cases:
        sealed_for = {key.recipient_fingerprint: key.sealed_key for key in keys if key.case_id == case.id}
        for private_key in (officer_key, recovery_key):
            content_key = crypto.open_content_key(sealed_for[private_key.public_key.fingerprint], private_key, case.id)
            report = crypto.open_sealed(content_key, case.sealed_report, purpose=crypto.PURPOSE_REPORT, case_id=case.id)
            opened.add(next(marker for marker in markers[:3] if marker.encode() in report))
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_content_key(sealed_for[officer_key.public_key.fingerprint], crypto.PrivateKey.generate(), case.id)
        tampered = bytearray(case.sealed_report)
        tampered[len(tampered) // 2] ^= 1
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_sealed(content_key, bytes(tampered), purpose=crypto.PURPOSE_REPORT, case_id=case.id)
    assert opened == set(markers[:3])

    first, second = cases[0], cases[1]
    first_key = next(k for k in keys if k.case_id == first.id and k.recipient_kind == "recovery")
    with pytest.raises(crypto.DecryptionFailed):  # a sealed key moved to the other case
        crypto.open_content_key(first_key.sealed_key, recovery_key, second.id)
    content_key = crypto.open_content_key(first_key.sealed_key, recovery_key, first.id)
    with pytest.raises(crypto.DecryptionFailed):  # the other case's report under this key
        crypto.open_sealed(content_key, second.sealed_report, purpose=crypto.PURPOSE_REPORT, case_id=first.id)

    # The same swap done in the database, behind the service's back: the reporter of the
    # first case gets an error, never the second case's report.
    async with live.sessionmaker() as session:
        mailbox_case = await session.scalar(select(CaseMessage.case_id))
        other = next(case for case in cases if case.id != mailbox_case)
        await session.execute(update(Case).where(Case.id == mailbox_case).values(sealed_report=other.sealed_report))
        await session.commit()
    swapped = await client.get("/api/v1/reporter/report", headers=mailbox)
    assert swapped.status_code == 500
    assert not any(marker in swapped.text for marker in markers)


async def test_a_database_dump_reveals_no_identity_even_after_its_release(
    live, recovery_key: crypto.PrivateKey, password_hashing, strong_password_hash: str
) -> None:
    """An identified report, asked for, consented to and released: the dump holds the
    identity only sealed, and only the reporter, the recovery key, the custodian and (after
    release) the requester can open it; the content key never does."""
    client = live.client
    office = Office(client, live.sessionmaker, StaffFactory(live.sessionmaker, client, password_hashing, strong_password_hash))
    await office.hire("triage", Role.TRIAGE)
    custodian = await office.hire("custodian", Role.AUDITOR, custodian=True)
    marker = f"IDMARK-{uuid.uuid4().hex[:12]}"
    contact = {"name": f"Name {marker}", "department": f"Dept {marker}", "email": f"{marker}@example.org", "phone": marker[-10:]}
    receipt, case_id = await office.file_identified_report("dump", contact=contact)
    request_id = (await office.ask(case_id, "triage")).json()["id"]
    assert (await answer_as_reporter(client, receipt, request_id, "consent")).status_code == 200
    assert (await office.release(request_id, "custodian")).status_code == 200
    assert await office.read_identity(case_id, "triage") == contact

    dump = pg_dump(live.url)
    assert "COPY public.case_identities" in dump and "COPY public.identity_requests" in dump
    haystack = dump_bytes(dump)
    for secret in (marker, marker[-10:], "Dept ", "example.org"):
        assert secret.encode() not in haystack, f"{secret} found in the database dump"
    assert REASON.encode() in haystack  # the search could have failed: the clear reason is there

    async with live.sessionmaker() as session:
        sealed = (await session.get(CaseIdentity, case_id)).sealed_identity
        holders = {key.recipient_fingerprint: key.sealed_key for key in (await session.scalars(select(IdentityKey))).all()}
        content_keys = (await session.scalars(select(CaseKey).where(CaseKey.case_id == case_id))).all()
    for private_key in (recovery_key, custodian.key, office["triage"].key):
        identity_key = crypto.open_identity_key(holders[private_key.public_key.fingerprint], private_key, case_id)
        assert crypto.open_identity(identity_key, sealed, case_id) == contact
    for key in content_keys:  # the recovery key's content key does not open it either
        if key.recipient_kind == "recovery":
            content_key = crypto.open_content_key(key.sealed_key, recovery_key, case_id)
            with pytest.raises(crypto.DecryptionFailed):
                crypto.open_identity(content_key, sealed, case_id)
            with pytest.raises(crypto.DecryptionFailed):  # nor does a content key's seal pass as an identity key's
                crypto.open_identity_key(key.sealed_key, recovery_key, case_id)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
async def test_a_database_dump_reveals_no_drill_report_code_token_or_receipt(
    live, password_hashing, strong_password_hash: str
) -> None:
    """Drills store their scenarios in the clear (fictitious by design) and nothing else:
    a drill report is sealed like any report, and tokens, codes and receipts are digests."""
    client = live.client
    coordinator = await StaffFactory(live.sessionmaker, client, password_hashing, strong_password_hash).headers_for(
        Role.DRILL_COORDINATOR
    )
    created = (await client.post("/api/v1/drills", json=campaign_body(), headers=coordinator)).json()
    codes = (
        await client.post(f"/api/v1/drills/{created['id']}/participants", json={"count": 3}, headers=coordinator)
    ).json()["codes"]
    markers = [f"DRILLMARK-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    receipts = [
        await submit_ok(client, report_body(markers[0], contact={"name": markers[1]}), headers={"X-Drill-Token": codes[0]}),
        (await client.post(f"/api/v1/drills/{created['id']}/inject", json={}, headers=coordinator)).json()["receipt"],
    ]
    mailbox = await reporter_headers(client, receipts[0])
    reply = f"DRILLMSG-{uuid.uuid4().hex[:12]}"
    assert (await client.post("/api/v1/reporter/messages", json={"body": reply}, headers=mailbox)).status_code == 201

    haystack = dump_bytes(pg_dump(live.url))
    secrets_to_find = [*markers, reply, created["injection_token"], *receipts, *map(parse_receipt, receipts)]
    secrets_to_find += [*codes, *(code.replace("-", "") for code in codes)]
    for secret in secrets_to_find:
        assert secret.encode() not in haystack, f"{secret} found in the database dump"
    # The search could have failed: the campaign's scenarios are in the clear.
    assert "Gasang Construction".encode() in haystack


def test_the_logs_of_a_whole_intake_and_mailbox_flow_hold_no_address_agent_or_content(
    fresh_database_url: str, recovery_key: crypto.PrivateKey, tmp_path: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_")}
    env.update(
        {
            "DATABASE_URL": fresh_database_url,
            "RECOVERY_PUBLIC_KEY": recovery_key.public_key.to_text(),
            "POW_DIFFICULTY": "8",
            "CLEANWINDOW_DATA_DIR": str(tmp_path / "data"),
            "CLEANWINDOW_LOG_LEVEL": "DEBUG",  # the most the service would ever write
            "CLEANWINDOW_REPORTER_LOG_DELAY_SECONDS": "0",  # development: write at once
            "CLEANWINDOW_WEB__TICKET_MIN_SECONDS": "0",  # the test sends the form at once
        }
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    marker, reply_marker = f"LOGMARK-{uuid.uuid4().hex[:10]}", f"LOGREPLY-{uuid.uuid4().hex[:10]}"
    try:
        # The client connects from an address of its own, to tell it from the server's.
        transport = httpx.HTTPTransport(local_address="127.0.0.9")
        with httpx.Client(base_url=base, transport=transport, headers=IDENTIFYING_HEADERS, timeout=30) as client:
            from tests.test_serve import wait_until_ready

            wait_until_ready(base, server)
            import asyncio

            async def flow() -> list[str]:
                async_transport = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
                async with httpx.AsyncClient(base_url=base, transport=async_transport, headers=IDENTIFYING_HEADERS, timeout=30) as c:
                    seen = []
                    receipt = await submit_ok(c, report_body(marker, contact={"email": f"{marker}@example.org"}))
                    seen.append(receipt)
                    bad = await c.post("/api/v1/reports", json={**report_body(marker), "category": f"{marker}-x", "pow": await solved_pow(c)})
                    assert bad.status_code == 422
                    headers = {**IDENTIFYING_HEADERS, **await reporter_headers(c, receipt)}
                    assert (await c.get("/api/v1/reporter/report", headers=headers)).status_code == 200
                    assert (await c.post("/api/v1/reporter/messages", json={"body": reply_marker}, headers=headers)).status_code == 201
                    uploaded = await c.post(
                        "/api/v1/reporter/attachments",
                        files={"file": (f"{marker}.txt", marker.encode() * 100, "text/plain")}, headers=headers,
                    )
                    assert uploaded.status_code == 201
                    assert (await c.post("/api/v1/reporter/sessions", json={"receipt": "000-000-000-000-000-000-000"})).status_code in (401, 422)
                    assert (await c.post("/api/v1/reporter/attachments", content=b"%%", headers=headers)).status_code == 422
                    # The same through the pages: a form with an error, then a report sent
                    # with the reporter's name, all typed with the marker.
                    page = (await c.get("/internal/report")).text
                    form = dict(re.findall(r'<input type="hidden" name="(ticket|idempotency_key)" value="([^"]*)"', page))
                    typed = {"category": "bribery", "summary": f"page {marker}", "details": f"details {marker}",
                             "identify": "yes", "name": f"name {marker}", "department": f"dept {marker}"}
                    wrong = await c.post("/internal/report", data={**form, **typed, "category": f"{marker}", "step": "check"})
                    assert wrong.status_code == 422
                    sent = await c.post("/internal/report", data={**form, **typed, "step": "send"})
                    assert sent.status_code == 200, sent.text
                    seen.append("-".join(re.findall(r'<span class="receipt-group">(\d{3})</span>', sent.text)))
                    return seen

            receipts = asyncio.run(flow())
            client.get("/healthz")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    logs = log_path.read_text()
    assert '"msg": "request"' in logs or '"msg":"request"' in logs or "request" in logs  # logging was on
    for secret in [marker, reply_marker, "127.0.0.9", FORWARDED_ADDRESS, "UA-MARKER-7f3e", *receipts, parse_receipt(receipts[0])]:
        assert secret not in logs, f"{secret} found in the service's log"


@pytest.mark.slow
def test_debug_sql_echo_on_reporter_paths_is_held_like_every_other_line(
    fresh_database_url: str, recovery_key: crypto.PrivateKey, tmp_path: Path
) -> None:
    """Debug logs every SQL statement. Those run for a submission or a receipt login must
    not be written at once with the millisecond (a second, plain copy beside the held,
    coarsened lines would date the reporter's request)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_")}
    env.update(
        {
            "DATABASE_URL": fresh_database_url,
            "RECOVERY_PUBLIC_KEY": recovery_key.public_key.to_text(),
            "POW_DIFFICULTY": "8",
            "CLEANWINDOW_DATA_DIR": str(tmp_path / "data"),
            "CLEANWINDOW_DEBUG": "true",  # development only, and the most it would write
            "CLEANWINDOW_REPORTER_LOG_DELAY_SECONDS": "3600",
        }
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        from tests.test_serve import wait_until_ready

        wait_until_ready(base, server)
        import asyncio

        async def flow() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                receipt = await submit_ok(client, report_body("sql-echo"))
                headers = await reporter_headers(client, receipt)
                assert (await client.get("/api/v1/reporter/report", headers=headers)).status_code == 200

        asyncio.run(flow())
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200  # an operator path
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

    lines = log_path.read_text().splitlines()
    sql_lines = [line for line in lines if re.search(r"\b(SELECT|INSERT|UPDATE)\b", line)]
    for line in sql_lines:
        assert line.startswith("{"), f"a plain SQL line bypassed the service's logging: {line}"
    echoed = [entry for entry in map(json.loads, sql_lines) if entry["logger"] == "sqlalchemy.engine.Engine"]
    # Debug does log SQL: the operator path's statements are written at once.
    assert any("alembic_version" in entry["msg"] for entry in echoed)
    for entry in echoed:
        if re.search(r"INSERT INTO cases|receipt_tag", entry["msg"]):
            # Only possible if the hour turned during the test: then released, coarsened.
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000Z", entry["ts"]), entry
