"""Backup and restore as docs/operations.md tells an operator to do it: `pg_dump` in custom
format, `pg_restore` into a new empty database, and then the checks the runbook asks for,
against the restored database: every report opens with the organisation's recovery key,
every receipt logs in and shows its report and messages, the audit chain verifies and
still carries the head hash pinned before the dump, `/readyz` is 200 and the background
jobs run. A restore onto a schema the service does not expect is refused, or migrated,
as documented; a dump holds no plaintext of a report.

The binaries are PostgreSQL 16's bundled with pgserver (the test extra), which dump and
restore a 15 or 16 server alike.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.audit.service import AuditLog
from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage
from app.db import migrations
from app.db.session import build_engine, build_sessionmaker
from app.domain import crypto
from app.domain.kdf import TEST_KEY_DERIVATION
from app.domain.staff import Role
from app.identity.models import CaseIdentity, IdentityKey
from app.jobs.models import JobRun
from app.jobs.worker import DELETE_FINISHED, QUEUE, opened
from app.main import create_app
from app.settings import Settings
from tests.cases.helpers import register_key, transition
from tests.conftest import StaffFactory, _admin, database_url_named
from tests.drills.helpers import campaign_body, scenario
from tests.intake.helpers import report_body, reporter_headers, submit_ok
from tests.jobs.helpers import fresh_context
from tests.test_cli import run_cli
from tests.test_privacy import dump_bytes, pg_dump_binary

pytestmark = pytest.mark.slow

EVIDENCE = b"%PDF-1.4 invoice 2026-0417 " + bytes(range(256)) * 400  # two chunks and a bit


def pg_binary(name: str) -> str:
    """`pg_restore` from the same installation as the `pg_dump` the privacy tests use."""
    found = Path(pg_dump_binary()).with_name(name)
    if not found.exists():
        pytest.fail(f"no {name} beside {pg_dump_binary()}")
    return str(found)


def libpq_env(async_url: str) -> dict[str, str]:
    """The connection of a SQLAlchemy URL as libpq's environment (TCP or a Unix socket)."""
    url = make_url(async_url)
    env = {**os.environ, "PGUSER": url.username or "postgres", "PGDATABASE": url.database or ""}
    host = url.host or url.query.get("host")
    if host:
        env["PGHOST"] = str(host)
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def dump(database_url: str, out: Path) -> None:
    # Uncompressed here so that the search for plaintext below reads the rows themselves;
    # the runbook's dumps are compressed (`--compress=1`), which changes nothing restored.
    result = subprocess.run(
        [pg_binary("pg_dump"), "--format=custom", "--compress=0", f"--file={out}"],
        env=libpq_env(database_url), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr


def restore(dump_file: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    """The runbook's restore: all or nothing, owned by whoever restores."""
    return subprocess.run(
        [pg_binary("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
         f"--dbname={make_url(database_url).database}", str(dump_file)],
        env=libpq_env(database_url), capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
async def new_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A new, empty database (no schema, no migration), as `createdb` makes it."""
    name = f"cw_restored_{secrets.token_hex(6)}"
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield database_url_named(postgres_server_url, name)
    await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def service_on(database_url: str, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app over HTTP on `database_url`, and its sessionmaker."""
    settings = settings.with_database_url(database_url)
    engine = build_engine(settings)
    sessionmaker = build_sessionmaker(engine)
    app = create_app(settings, sessionmaker=sessionmaker, key_derivation=TEST_KEY_DERIVATION)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.77", 40123))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, sessionmaker
    finally:
        await engine.dispose()


def b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


async def mailbox_view(client: httpx.AsyncClient, receipt: str) -> dict[str, Any]:
    """What a reporter sees with the receipt: the report, the thread, the files."""
    headers = await reporter_headers(client, receipt)
    report = await client.get("/api/v1/reporter/report", headers=headers)
    assert report.status_code == 200, report.text
    view = report.json()
    view["downloads"] = {}
    for attachment in view["attachments"]:
        download = await client.get(f"/api/v1/reporter/attachments/{attachment['id']}", headers=headers)
        assert download.status_code == 200, download.text
        view["downloads"][attachment["id"]] = download.content
    return view


async def opened_with_recovery_key(sessionmaker, recovery_key: crypto.PrivateKey) -> dict[str, Any]:
    """Everything the offline side opens with the recovery private key alone, straight
    from the tables (no service involved)."""
    async with sessionmaker() as session:
        cases = (await session.scalars(select(Case))).all()
        keys = {key.case_id: key for key in await session.scalars(select(CaseKey).where(CaseKey.recipient_kind == "recovery"))}
        messages = (await session.scalars(select(CaseMessage))).all()
        attachments = (await session.scalars(select(CaseAttachment).where(CaseAttachment.case_id.is_not(None)))).all()
        chunks = (await session.scalars(select(AttachmentChunk).order_by(AttachmentChunk.index))).all()
        identities = (await session.scalars(select(CaseIdentity))).all()
        identity_keys = {
            key.case_id: key
            for key in await session.scalars(select(IdentityKey).where(IdentityKey.holder_kind == "recovery"))
        }
    content_keys = {case.id: crypto.open_content_key(keys[case.id].sealed_key, recovery_key, case.id) for case in cases}
    reports = {
        case.id: json.loads(
            crypto.open_sealed(content_keys[case.id], case.sealed_report, purpose=crypto.PURPOSE_REPORT, case_id=case.id)
        )
        for case in cases
    }
    bodies = sorted(
        crypto.open_message(
            content_keys[message.case_id], message.sealed_body,
            case_id=message.case_id, message_id=message.id, author=message.author,
        ).body
        for message in messages
    )
    files = []
    for attachment in attachments:
        own = [chunk for chunk in chunks if chunk.attachment_id == attachment.id]
        files.append(b"".join(
            crypto.open_attachment_chunk(
                content_keys[attachment.case_id], chunk.sealed, case_id=attachment.case_id,
                attachment_id=attachment.id, index=chunk.index, final=chunk.index == len(own) - 1,
            )
            for chunk in own
        ))
    contacts = [
        crypto.open_identity(
            crypto.open_identity_key(identity_keys[identity.case_id].sealed_key, recovery_key, identity.case_id),
            identity.sealed_identity,
            identity.case_id,
        )
        for identity in identities
    ]
    return {"reports": reports, "messages": bodies, "files": files, "contacts": contacts}


async def test_a_restored_dump_opens_every_report_logs_every_receipt_in_and_keeps_the_pinned_chain(
    live, new_database: str, settings: Settings, recovery_key: crypto.PrivateKey,
    password_hashing, strong_password_hash: str, tmp_path: Path,
) -> None:
    client = live.client
    staff = StaffFactory(live.sessionmaker, client, password_hashing, strong_password_hash)
    triage = await staff.headers_for(Role.TRIAGE)
    triage_key = await register_key(client, triage)
    auditor = await staff.headers_for(Role.AUDITOR)
    coordinator = await staff.headers_for(Role.DRILL_COORDINATOR)

    # A working office: reports (one identified, one with a message and a file), triage
    # steps with a reason, a staff reply, a drill injection.
    markers = [f"BACKUP-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    contact = {"name": f"Name {markers[0]}", "email": f"{markers[0].lower()}@example.org"}
    receipts = [
        await submit_ok(client, report_body(markers[0], channel="employee", contact=contact)),
        await submit_ok(client, report_body(markers[1])),
        await submit_ok(client, report_body(markers[2], category="embezzlement")),
    ]
    reporter_message = f"MSG-{uuid.uuid4().hex[:12]} I also have the invoice."
    mailbox = await reporter_headers(client, receipts[1])
    assert (await client.post("/api/v1/reporter/messages", json={"body": reporter_message}, headers=mailbox)).status_code == 201
    uploaded = await client.post(
        "/api/v1/reporter/attachments", files={"file": ("invoice.pdf", EVIDENCE, "application/pdf")}, headers=mailbox
    )
    assert uploaded.status_code == 201, uploaded.text

    drill_marker = f"DRILL-{uuid.uuid4().hex[:12]}"
    campaign = await client.post(
        "/api/v1/drills", json=campaign_body(scenarios=[scenario(marker=drill_marker)]), headers=coordinator
    )
    assert campaign.status_code == 201, campaign.text
    injected = await client.post(f"/api/v1/drills/{campaign.json()['id']}/inject", json={}, headers=coordinator)
    assert injected.status_code == 201, injected.text
    receipts.append(injected.json()["receipt"])

    reason = f"REASON-{uuid.uuid4().hex[:12]} permit office named in two reports"
    queue = (await client.get("/api/v1/cases", headers=triage)).json()["items"]
    assert len(queue) == 4  # the drill is blind: triage works it like the others
    staff_reply = f"REPLY-{uuid.uuid4().hex[:12]} 언제 받으셨나요?"
    for item in queue:
        detail = (await client.get(f"/api/v1/cases/{item['id']}", headers=triage)).json()
        case_id = uuid.UUID(item["id"])
        assert (await transition(client, triage, case_id, "acknowledge", 1, reason=reason)).status_code == 200
        if detail["messages"]:  # the case the reporter wrote to gets a reply
            content_key = crypto.open_content_key(b64(detail["content_key"]["sealed_key"]), triage_key, case_id)
            message_id = uuid.uuid4()
            sealed = crypto.seal_message(content_key, staff_reply, case_id=case_id, message_id=message_id, author="staff")
            sent = await client.post(
                f"/api/v1/cases/{case_id}/messages",
                json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed), "seal_format": 2},
                headers=triage,
            )
            assert sent.status_code == 201, sent.text
            assert (await transition(client, triage, case_id, "start_assessment", 2)).status_code == 200

    # The pin, as an auditor takes it: the entry count and the head hash, kept elsewhere.
    pin = (await client.get("/api/v1/audit/verify", headers=auditor)).json()
    assert pin["ok"] and pin["entries"] >= 10, pin
    before = {receipt: await mailbox_view(client, receipt) for receipt in receipts}
    assert {message["body"] for message in before[receipts[1]]["messages"]} == {reporter_message, staff_reply}
    assert list(before[receipts[1]]["downloads"].values()) == [EVIDENCE]

    dump_file = tmp_path / "cleanwindow.dump"
    dump(live.url, dump_file)
    haystack = dump_bytes(dump_file.read_bytes().decode("latin-1"))
    for secret in [*markers, reporter_message[:16], staff_reply[:18], contact["email"], *receipts]:
        assert secret.encode() not in haystack, f"{secret} found in the dump"
    # The search could have failed: what is stored in the clear is found.
    assert reason.encode() in haystack and drill_marker.encode() in haystack

    restored = restore(dump_file, new_database)
    assert restored.returncode == 0, restored.stderr

    # The offline side: the recovery private key opens every report, message, file and
    # identity of the restored database, and they are the ones written.
    async with service_on(new_database, settings) as (restored_client, restored_sessions):
        offline = await opened_with_recovery_key(restored_sessions, recovery_key)
        summaries = sorted(report["content"]["summary"] for report in offline["reports"].values())
        assert len(summaries) == 4
        for marker in [*markers, drill_marker]:
            assert sum(marker in summary for summary in summaries) == 1, (marker, summaries)
        assert offline["messages"] == sorted([reporter_message, staff_reply])
        assert offline["files"] == [EVIDENCE]
        assert offline["contacts"] == [contact]

        # Every receipt still logs in and shows the same report, thread and files.
        after = {receipt: await mailbox_view(restored_client, receipt) for receipt in receipts}
        assert after == before

        # The chain verifies end to end and its head is the pinned one: read straight from
        # the database (no login, so nothing appended)...
        async with restored_sessions() as session:
            verification = await AuditLog(session).verify()
        assert (verification.ok, verification.entries, verification.head_hash.hex()) == (True, pin["entries"], pin["head_hash"])
        # ...and as the runbook does it: an auditor logs in (which appends `auth.login`),
        # verifies, and finds the pinned entry still carrying the pinned hash.
        fresh_auditor = await StaffFactory(
            restored_sessions, restored_client, password_hashing, strong_password_hash
        ).headers_for(Role.AUDITOR)
        verified = (await restored_client.get("/api/v1/audit/verify", headers=fresh_auditor)).json()
        assert verified["ok"] and verified["entries"] > pin["entries"], verified
        pinned = (await restored_client.get(
            "/api/v1/audit", params={"cursor": str(pin["entries"] + 1), "limit": 1}, headers=fresh_auditor
        )).json()["items"]
        assert [(entry["seq"], entry["hash"]) for entry in pinned] == [(pin["entries"], pin["head_hash"])]
        # Staff tokens issued before the dump still work under the same secret key.
        assert (await restored_client.get("/api/v1/users/me", headers=triage)).status_code == 200

        ready = await restored_client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["schema_revision"] == migrations.head_revision()

    # A rotated secret key: every staff token is void, receipts and sealed reports are not.
    rotated = settings.model_copy(update={"secret_key": SecretStr("rotated-" + secrets.token_hex(24))})
    async with service_on(new_database, rotated) as (rotated_client, _):
        assert (await rotated_client.get("/api/v1/users/me", headers=triage)).status_code == 401
        assert (await mailbox_view(rotated_client, receipts[1]))["messages"] == before[receipts[1]]["messages"]

    # The background jobs' tables came back usable: a job runs from the command line, and
    # one deferred into the restored queue is taken and run by a worker.
    ran = run_cli("jobs", "run", "audit.verify", database_url=new_database)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"]["ok"] is True
    async with fresh_context(new_database, settings.with_database_url(new_database)) as context:
        async with context.sessionmaker() as session:
            runs_before = await session.scalar(select(func.coalesce(func.sum(JobRun.runs), 0)).where(JobRun.name == "cleanup.expired"))
        async with opened(context) as queue_app:
            job_id = await queue_app.tasks["cleanup.expired"].defer_async(timestamp=int(time.time()))
            async with context.sessionmaker() as session:
                assert await session.scalar(text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}) == "todo"
            await queue_app.run_worker_async(
                queues=[QUEUE], wait=False, delete_jobs=DELETE_FINISHED, install_signal_handlers=False
            )
        async with context.sessionmaker() as session:
            assert await session.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}) == 0
            runs = await session.scalar(select(JobRun.runs).where(JobRun.name == "cleanup.expired"))
            assert runs >= runs_before + 1
            assert await session.scalar(select(JobRun.failures).where(JobRun.name == "cleanup.expired")) == 0


def previous_revision() -> str:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    down = script.get_revision(migrations.head_revision()).down_revision
    assert isinstance(down, str)
    return down


async def installation_salt(database_url: str) -> bytes:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text("SELECT receipt_salt FROM installation"))
    finally:
        await engine.dispose()


async def test_a_dump_of_an_older_schema_is_refused_until_migrated_and_keeps_its_salt(
    empty_database_url: str, new_database: str, settings: Settings, tmp_path: Path
) -> None:
    """A backup taken before an upgrade, restored under the newer release: nothing serves
    it until `cleanwindow db upgrade` has run, and migrating it keeps the receipts'
    salt (else no receipt of the restored cases would open again)."""
    older = previous_revision()
    await migrations.upgrade_database(empty_database_url, older)
    await _admin(empty_database_url, "INSERT INTO staff_users (id, username, role, password_hash, is_active, created_at) "
                 "VALUES (gen_random_uuid(), 'older.triage', 'triage', 'unused', true, now())")
    salt = await installation_salt(empty_database_url)
    dump_file = tmp_path / "older.dump"
    dump(empty_database_url, dump_file)
    assert restore(dump_file, new_database).returncode == 0

    async with service_on(new_database, settings) as (client, _):
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503 and older in not_ready.json()["detail"]
        assert "cleanwindow db upgrade" in not_ready.json()["detail"]
    refused = run_cli("jobs", "list", database_url=new_database)
    assert refused.returncode == 1 and f"schema is at {older}" in refused.stderr

    upgraded = run_cli("db", "upgrade", database_url=new_database)
    assert upgraded.returncode == 0, upgraded.stderr
    assert migrations.head_revision() in upgraded.stdout
    async with service_on(new_database, settings) as (client, sessions):
        assert (await client.get("/readyz")).status_code == 200
        async with sessions() as session:
            assert await session.scalar(text("SELECT username FROM staff_users")) == "older.triage"
            assert (await AuditLog(session).verify()).ok
    assert await installation_salt(new_database) == salt


async def test_a_dump_from_a_newer_release_is_refused_with_one_line(
    fresh_database_url: str, new_database: str, settings: Settings, tmp_path: Path
) -> None:
    """A revision this release does not know (the dump came from a newer one): the
    service is not ready, and `db upgrade` refuses rather than guessing; the fix is to run
    the release the dump came from."""
    await _admin(fresh_database_url, "UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    dump_file = tmp_path / "newer.dump"
    dump(fresh_database_url, dump_file)
    assert restore(dump_file, new_database).returncode == 0
    async with service_on(new_database, settings) as (client, _):
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503 and "f00dfeedbeef" in not_ready.json()["detail"]
    refused = run_cli("db", "upgrade", database_url=new_database)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines() == [
        "cleanwindow: cannot migrate the database: Can't locate revision identified by 'f00dfeedbeef'"
    ]
    assert await migrations.database_revision(new_database) == "f00dfeedbeef"  # left as it was


async def test_a_restore_onto_a_database_that_already_has_a_schema_fails_and_changes_nothing(
    live, new_database: str, tmp_path: Path
) -> None:
    """Restoring onto a database the service already migrated (a replica started before
    the restore) must fail whole: a half-restored database with two salts' worth of rows
    would be worse than none. `--single-transaction --exit-on-error` makes it so."""
    await submit_ok(live.client, report_body("ONTO-SCHEMA"))
    dump_file = tmp_path / "live.dump"
    dump(live.url, dump_file)
    await migrations.upgrade_database(new_database)  # what `serve` does when it starts
    salt = await installation_salt(new_database)

    refused = restore(dump_file, new_database)
    assert refused.returncode != 0 and "already exists" in refused.stderr
    engine = create_async_engine(new_database)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM cases")) == 0
    finally:
        await engine.dispose()
    assert await installation_salt(new_database) == salt
