"""The reporter's mailbox over the real HTTP API: receipt login, reading the report,
messages both ways, attachments, and what a stranger with a wrong receipt or token gets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage
from app.domain import crypto
from app.domain.receipts import damm_check_digit, new_receipt, parse_receipt
from app.domain.staff import Role
from app.intake.models import IntakeBudget
from app.settings import Settings
from tests.conftest import organisation_today
from tests.intake.helpers import client_for, report_body, reporter_headers, submit_ok

PROBLEM = "application/problem+json"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 600  # ~150 KiB: several chunks


def orm(db_connection: AsyncConnection) -> AsyncSession:
    return AsyncSession(bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


async def count(db_connection: AsyncConnection, model) -> int:
    return await db_connection.scalar(select(func.count()).select_from(model))


def wrong_but_well_formed_receipt() -> str:
    digits = "".join(str((int(d) + 1) % 10) for d in parse_receipt(new_receipt())[:20])
    return digits + str(damm_check_digit(digits))


@pytest.fixture
async def mailbox(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    receipt = await submit_ok(client, report_body("MAILBOX", contact={"email": "reporter@example.org"}))
    return receipt, await reporter_headers(client, receipt)


async def test_the_receipt_opens_the_reporters_own_report(client: httpx.AsyncClient, mailbox) -> None:
    receipt, headers = mailbox
    response = await client.get("/api/v1/reporter/report", headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "received"
    assert report["content"]["summary"] == "건축 허가 대가로 금품 요구 MAILBOX"
    assert report["content"]["where"] == "Building permits desk, 3rd floor"
    assert report["contact"] == {"email": "reporter@example.org"}
    assert (report["category"], report["channel"], report["messages"], report["attachments"]) == (
        "bribery", "citizen", [], []
    )
    assert response.headers["cache-control"] == "no-store"


async def test_the_receipt_works_however_it_is_typed(client: httpx.AsyncClient, mailbox) -> None:
    receipt, _ = mailbox
    spaced = " ".join(parse_receipt(receipt)[i : i + 4] for i in range(0, 21, 4))
    assert (await client.post("/api/v1/reporter/sessions", json={"receipt": spaced})).status_code == 201


async def test_a_wrong_receipt_is_a_401_counted_without_anything_about_who(
    client: httpx.AsyncClient, db_connection: AsyncConnection, mailbox
) -> None:
    response = await client.post("/api/v1/reporter/sessions", json={"receipt": wrong_but_well_formed_receipt()})
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("invalid-receipt")
    async with orm(db_connection) as session:
        budget = (await session.scalars(select(IntakeBudget).where(IntakeBudget.kind == "receipt_failures"))).one()
    assert budget.used == 1  # a count per window, and nothing else


async def test_a_mistyped_receipt_is_a_422_and_costs_nothing(
    client: httpx.AsyncClient, db_connection: AsyncConnection, mailbox
) -> None:
    receipt, _ = mailbox
    digits = parse_receipt(receipt)
    typo = digits[:5] + str((int(digits[5]) + 1) % 10) + digits[6:]
    for text in (typo, "12345", "not a receipt"):
        response = await client.post("/api/v1/reporter/sessions", json={"receipt": text})
        assert response.status_code == 422 and response.json()["type"].endswith("malformed-receipt")
    failures = await db_connection.scalar(
        select(func.coalesce(func.sum(IntakeBudget.used), 0)).where(IntakeBudget.kind == "receipt_failures")
    )
    assert failures == 0


async def test_receipt_logins_pause_for_everyone_once_the_shared_failure_budget_is_spent(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    settings.intake.receipt_failures_per_window = 3
    async with client_for(settings, sessionmaker) as client:
        receipt = await submit_ok(client)
        statuses = [
            (await client.post("/api/v1/reporter/sessions", json={"receipt": wrong_but_well_formed_receipt()})).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        paused = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
    assert paused.status_code == 429 and 0 < int(paused.headers["retry-after"]) <= settings.intake.budget_window_seconds


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer cwr_AAAA", "Bearer cws_not-a-reporter-token", "Basic dXNlcjpwYXNz"],
)
async def test_without_a_valid_session_the_mailbox_is_closed(
    client: httpx.AsyncClient, mailbox, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path, kwargs in [
        ("GET", "/api/v1/reporter/report", {}),
        ("POST", "/api/v1/reporter/messages", {"json": {"body": "hi"}}),
        ("POST", "/api/v1/reporter/attachments", {"files": {"file": ("a.txt", b"hello", "text/plain")}}),
    ]:
        response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_a_tampered_or_foreign_token_is_refused(client: httpx.AsyncClient, settings: Settings, sessionmaker, mailbox) -> None:
    _, headers = mailbox
    token = headers["Authorization"].removeprefix("Bearer ")
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert (await client.get("/api/v1/reporter/report", headers={"Authorization": f"Bearer {flipped}"})).status_code == 401
    async with client_for(settings.model_copy(update={"secret_key": SecretStr("another-secret-key-of-enough-length-42")}), sessionmaker) as other_client:
        assert (await other_client.get("/api/v1/reporter/report", headers=headers)).status_code == 401


async def test_each_receipt_opens_only_its_own_report(client: httpx.AsyncClient, mailbox) -> None:
    _, first_headers = mailbox
    second = await submit_ok(client, report_body("SECOND"))
    second_report = (await client.get("/api/v1/reporter/report", headers=await reporter_headers(client, second))).json()
    first_report = (await client.get("/api/v1/reporter/report", headers=first_headers)).json()
    assert "SECOND" in second_report["content"]["summary"] and "MAILBOX" in first_report["content"]["summary"]


async def test_staff_reply_reaches_the_reporter_and_reporter_message_reaches_staff(
    client: httpx.AsyncClient, db_connection: AsyncConnection, staff, recovery_key: crypto.PrivateKey, mailbox
) -> None:
    _, headers = mailbox
    await client.post("/api/v1/reporter/messages", json={"body": "I also have the invoice."}, headers=headers)
    officer = await staff.create(Role.TRIAGE)
    async with orm(db_connection) as session:
        case = (await session.scalars(select(Case))).one()
        sealed = (await session.scalars(
            select(CaseKey).where(CaseKey.case_id == case.id, CaseKey.recipient_kind == "recovery")
        )).one()
        content_key = crypto.open_content_key(sealed.sealed_key, recovery_key, case.id)
        reporter_message = (await session.scalars(select(CaseMessage))).one()
        assert crypto.open_message(
            content_key, reporter_message.sealed_body, case_id=case.id, message_id=reporter_message.id, author="reporter"
        ) == crypto.OpenedMessage("I also have the invoice.", author_verified=True)
        assert reporter_message.sent_at is None  # a reporter's message carries a date only
        reply = CaseMessage(
            id=uuid.uuid4(), case_id=case.id, seq=2, author="staff", staff_user_id=officer.id,
            sent_on=organisation_today(), sent_at=datetime.now(UTC), seal_format=crypto.MESSAGE_SEAL_FORMAT,
        )
        reply.sealed_body = crypto.seal_message(
            content_key, "언제 받으셨나요? When did you receive it?", case_id=case.id, message_id=reply.id, author="staff"
        )
        session.add(reply)
        await session.commit()
    thread = (await client.get("/api/v1/reporter/report", headers=headers)).json()["messages"]
    assert [(m["seq"], m["author"], m["body"]) for m in thread] == [
        (1, "reporter", "I also have the invoice."),
        (2, "staff", "언제 받으셨나요? When did you receive it?"),
    ]


@pytest.mark.parametrize("body", [{"body": ""}, {"body": "   "}, {"body": "x" * 20_001}, {"text": "hi"}, {}])
async def test_a_bad_message_is_refused_and_nothing_written(
    client: httpx.AsyncClient, db_connection: AsyncConnection, mailbox, body: dict
) -> None:
    _, headers = mailbox
    response = await client.post("/api/v1/reporter/messages", json=body, headers=headers)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert await count(db_connection, CaseMessage) == 0


async def test_an_attachment_round_trips_sealed_in_chunks(
    client: httpx.AsyncClient, db_connection: AsyncConnection, recovery_key: crypto.PrivateKey, mailbox
) -> None:
    _, headers = mailbox
    response = await client.post(
        "/api/v1/reporter/attachments", files={"file": ("영수증 invoice.pdf", PDF, "application/pdf")}, headers=headers
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["filename"], info["media_type"], info["size_bytes"]) == ("영수증 invoice.pdf", "application/pdf", len(PDF))

    listed = (await client.get("/api/v1/reporter/report", headers=headers)).json()["attachments"]
    assert [item["id"] for item in listed] == [info["id"]]
    download = await client.get(f"/api/v1/reporter/attachments/{info['id']}", headers=headers)
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-content-type-options"] == "nosniff"

    # Staff side: the recovery key opens the content key, which opens every chunk.
    async with orm(db_connection) as session:
        attachment = (await session.scalars(select(CaseAttachment))).one()
        chunks = (await session.scalars(
            select(AttachmentChunk).where(AttachmentChunk.attachment_id == attachment.id).order_by(AttachmentChunk.index)
        )).all()
        sealed = (await session.scalars(
            select(CaseKey).where(CaseKey.case_id == attachment.case_id, CaseKey.recipient_kind == "recovery")
        )).one()
    assert len(chunks) == attachment.chunk_count == -(-len(PDF) // attachment.chunk_bytes)
    content_key = crypto.open_content_key(sealed.sealed_key, recovery_key, attachment.case_id)
    opened = b"".join(
        crypto.open_attachment_chunk(
            content_key, chunk.sealed, case_id=attachment.case_id, attachment_id=attachment.id,
            index=chunk.index, final=chunk.index == len(chunks) - 1,
        )
        for chunk in chunks
    )
    assert opened == PDF
    assert all(PDF[1000:1100] not in chunk.sealed for chunk in chunks)


async def test_the_reporter_s_dates_are_the_organisation_s_dates(client: httpx.AsyncClient, clock) -> None:
    clock.now = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 08:30 KST on the 28th
    receipt = await submit_ok(client)
    headers = await reporter_headers(client, receipt)
    clock.now = datetime(2026, 11, 27, 23, 40, tzinfo=UTC)
    sent = await client.post("/api/v1/reporter/messages", json={"body": "One more detail."}, headers=headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["sent_on"] == "2026-11-28"
    clock.now = datetime(2026, 11, 28, 14, 59, 59, tzinfo=UTC)  # 23:59:59 KST on the 28th
    headers = await reporter_headers(client, receipt)  # the first session has expired
    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # midnight KST: the 29th
    uploaded = await client.post(
        "/api/v1/reporter/attachments", files={"file": ("invoice.pdf", PDF, "application/pdf")}, headers=headers
    )
    assert uploaded.status_code == 201, uploaded.text
    report = (await client.get("/api/v1/reporter/report", headers=headers)).json()
    assert report["received_on"] == "2026-11-28"
    assert [message["sent_on"] for message in report["messages"]] == ["2026-11-28"]
    assert [attachment["uploaded_on"] for attachment in report["attachments"]] == ["2026-11-29"]


@pytest.mark.parametrize(
    ("files", "status", "kind"),
    [
        ({"file": ("a.exe", b"MZ\x90\x00" * 10, "application/x-msdownload")}, 415, "unsupported-file-type"),
        ({"file": ("fake.pdf", b"<html><script>", "application/pdf")}, 415, "unsupported-file-type"),
        ({"file": ("empty.txt", b"", "text/plain")}, 422, "invalid-input"),
        ({"other": ("a.txt", b"hello there", "text/plain")}, 422, "malformed-multipart"),
    ],
)
async def test_a_bad_attachment_is_refused_and_nothing_written(
    client: httpx.AsyncClient, db_connection: AsyncConnection, mailbox, files: dict, status: int, kind: str
) -> None:
    _, headers = mailbox
    response = await client.post("/api/v1/reporter/attachments", files=files, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(kind)
    assert await count(db_connection, CaseAttachment) == 0 and await count(db_connection, AttachmentChunk) == 0


async def test_a_refused_file_type_is_not_echoed(client: httpx.AsyncClient, mailbox) -> None:
    _, headers = mailbox
    files = {"file": ("a.bin", b"hello there", "application/x-echo-marker-77c1")}
    response = await client.post("/api/v1/reporter/attachments", files=files, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/pdf" in response.json()["allowed"]
    assert "echo-marker" not in response.text


async def test_a_non_multipart_upload_is_refused(client: httpx.AsyncClient, mailbox) -> None:
    _, headers = mailbox
    response = await client.post("/api/v1/reporter/attachments", content=b"raw", headers={**headers, "Content-Type": "application/pdf"})
    assert response.status_code == 422 and response.json()["type"].endswith("malformed-multipart")


async def test_size_and_count_limits_hold_and_a_refused_upload_leaves_nothing(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    limits = settings.intake.attachments
    limits.max_bytes, limits.max_per_case, limits.chunk_bytes = 64 * 1024, 2, 16 * 1024
    async with client_for(settings, sessionmaker) as client:
        headers = await reporter_headers(client, await submit_ok(client))
        upload = lambda data: client.post(  # noqa: E731
            "/api/v1/reporter/attachments", files={"file": ("f.pdf", data, "application/pdf")}, headers=headers
        )
        too_big = await upload(b"%PDF-" + b"x" * (64 * 1024))
        assert too_big.status_code == 413 and too_big.headers["content-type"] == PROBLEM
        assert await count(db_connection, CaseAttachment) == 0 and await count(db_connection, AttachmentChunk) == 0
        assert (await upload(b"%PDF-" + b"x" * 40_000)).status_code == 201
        assert (await upload(b"%PDF-small")).status_code == 201
        third = await upload(b"%PDF-third")
    assert third.status_code == 409 and third.json()["type"].endswith("attachment-limit-reached")
    assert await count(db_connection, CaseAttachment) == 2


async def test_an_unknown_attachment_is_a_404(client: httpx.AsyncClient, mailbox) -> None:
    _, headers = mailbox
    response = await client.get(f"/api/v1/reporter/attachments/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM


async def test_the_per_report_total_is_a_413_not_a_server_error(
    settings: Settings, sessionmaker, db_connection: AsyncConnection
) -> None:
    limits = settings.intake.attachments
    limits.max_bytes, limits.max_total_bytes_per_case = 64 * 1024, 80 * 1024
    async with client_for(settings, sessionmaker) as client:
        headers = await reporter_headers(client, await submit_ok(client))
        files = lambda size: {"file": ("f.pdf", b"%PDF-" + b"x" * size, "application/pdf")}  # noqa: E731
        first = await client.post("/api/v1/reporter/attachments", files=files(50_000), headers=headers)
        second = await client.post("/api/v1/reporter/attachments", files=files(50_000), headers=headers)
    assert first.status_code == 201
    assert second.status_code == 413 and second.json()["type"].endswith("attachment-too-large")
    assert second.json()["limit"] < 80 * 1024 - 50_000
    assert await count(db_connection, CaseAttachment) == 1


async def test_a_successful_receipt_login_leaves_no_budget_row(
    client: httpx.AsyncClient, db_connection: AsyncConnection, mailbox
) -> None:
    kinds = (await db_connection.execute(select(IntakeBudget.kind))).scalars().all()
    assert kinds == ["submissions"]
