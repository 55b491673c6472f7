"""Slow reporters, the way a bad network or an attacker makes them: uploads that trickle in
and downloads that are read a few bytes at a time, against a real server on a small pool.

Nothing a reporter's client does slowly may hold a pooled connection or the case's row
lock while it waits: twenty trickling uploads on one case must leave staff transitions on
that case and `/readyz` answering at once, and be cut off at their deadline leaving
nothing behind.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cases.models import AttachmentChunk, Case, CaseAttachment
from app.context import AppContext
from app.domain.clock import organisation_date, utc_now
from app.domain.kdf import TEST_KEY_DERIVATION
from app.jobs.cleanup import cleanup_expired
from app.domain.staff import PasswordHashing, Role
from app.main import create_app
from app.settings import Settings
from tests.client.helpers import PASSWORD, create_admin, serving
from tests.intake.helpers import client_for, report_body, reporter_headers, submit_ok

pytestmark = pytest.mark.slow

POOL_SIZE = 2  # a pool of 2 (+2 overflow): four stuck requests would exhaust it
UPLOAD_DEADLINE_SECONDS = 4
SLOW_UPLOADS = 20
FAST_ENOUGH_SECONDS = 2.0
PDF_HEAD = b"%PDF-1.7\n"


@dataclass
class SlowDesk:
    url: str
    port: int
    database_url: str
    triage_headers: dict[str, str]
    reporter_headers: dict[str, str]
    case_id: str


async def staff_headers(client: httpx.AsyncClient, admin_token: str, role: Role) -> dict[str, str]:
    username = f"{role.value}-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        "/api/v1/users",
        json={"username": username, "role": role.value, "password": PASSWORD},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert created.status_code == 201, created.text
    login = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@asynccontextmanager
async def open_desk(
    fresh_database_url: str, settings: Settings, password_hashing: PasswordHashing, **limits: int
) -> AsyncIterator[SlowDesk]:
    admin = await create_admin(fresh_database_url, password_hashing)
    attachments = settings.intake.attachments.model_copy(
        update={"chunk_bytes": 4096, "upload_timeout_seconds": UPLOAD_DEADLINE_SECONDS, **limits}
    )
    settings = settings.with_database_url(fresh_database_url).model_copy(
        update={
            "database_pool_size": POOL_SIZE,
            "intake": settings.intake.model_copy(update={"attachments": attachments}),
        }
    )
    with serving(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            login = await client.post("/api/v1/auth/token", data={"username": admin, "password": PASSWORD})
            assert login.status_code == 200, login.text
            triage = await staff_headers(client, login.json()["access_token"], Role.TRIAGE)
            receipt = await submit_ok(client, report_body("SLOW"))
            reporter = await reporter_headers(client, receipt)
            (case,) = (await client.get("/api/v1/cases", headers=triage)).json()["items"]
        yield SlowDesk(url, int(url.rsplit(":", 1)[1]), fresh_database_url, triage, reporter, case["id"])


@pytest.fixture
async def desk(
    fresh_database_url: str, settings: Settings, password_hashing: PasswordHashing
) -> AsyncIterator[SlowDesk]:
    # Room for all the slow uploads at once (each reserves the 200 kB it declares).
    async with open_desk(fresh_database_url, settings, password_hashing, max_per_case=2 * SLOW_UPLOADS) as desk:
        yield desk


async def rows(database_url: str, *models) -> list[int]:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            return [await session.scalar(select(func.count()).select_from(model)) for model in models]
    finally:
        await engine.dispose()


async def trickling_upload(
    port: int, token_header: str, *, silent: bool = False, size: int = 200_000
) -> tuple[bytes, float]:
    """Announces a PDF of `size` bytes, then sends it 512 bytes at a time, five times a second (or,
    `silent`, nothing at all), until the server answers; returns the status line and
    headers of that answer, and how long it took to come."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    boundary = "slow-boundary-7f3a"
    preamble = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + PDF_HEAD
    writer.write(
        (
            "POST /api/v1/reporter/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {token_header}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(preamble) + size}\r\n\r\n"
        ).encode()
        + (b"" if silent else preamble)
    )

    async def trickle() -> None:
        while not silent:
            writer.write(b"x" * 512)
            await writer.drain()
            await asyncio.sleep(0.2)

    sending = asyncio.create_task(trickle())
    try:
        answer = await reader.readuntil(b"\r\n\r\n")
    finally:
        sending.cancel()
        writer.close()
    return answer, time.monotonic() - started


async def hang_up_midway(port: int, token_header: str) -> None:
    """Sends the first 10 kB of a 200 kB file (two chunks' worth), then disconnects."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    boundary = "hang-up-boundary"
    preamble = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + PDF_HEAD
    writer.write(
        (
            "POST /api/v1/reporter/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {token_header}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(preamble) + 200_000}\r\n\r\n"
        ).encode()
        + preamble
        + b"y" * 10_000
    )
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()


async def timed(request) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_slow_uploads_hold_neither_the_case_nor_the_pool_and_are_cut_off_at_the_deadline(desk: SlowDesk) -> None:
    token = desk.reporter_headers["Authorization"]
    uploads = [asyncio.create_task(trickling_upload(desk.port, token)) for _ in range(SLOW_UPLOADS)]
    uploads.append(asyncio.create_task(trickling_upload(desk.port, token, silent=True)))
    try:
        await hang_up_midway(desk.port, token)
        await asyncio.sleep(1.0)  # all of them authenticated and streaming, chunks being staged
        assert not any(upload.done() for upload in uploads), [upload.result() for upload in uploads if upload.done()]
        async with httpx.AsyncClient(base_url=desk.url, timeout=FAST_ENOUGH_SECONDS) as client:
            ready, ready_took = await timed(client.get("/readyz"))
            moved, moved_took = await timed(
                client.post(
                    f"/api/v1/cases/{desk.case_id}/transitions",
                    json={"action": "acknowledge", "expected_version": 1},
                    headers=desk.triage_headers,
                )
            )
            report, report_took = await timed(client.get("/api/v1/reporter/report", headers=desk.reporter_headers))
            case = await client.get(f"/api/v1/cases/{desk.case_id}", headers=desk.triage_headers)
        assert ready.status_code == 200 and ready_took < FAST_ENOUGH_SECONDS
        assert moved.status_code == 200 and moved_took < FAST_ENOUGH_SECONDS, moved.text
        assert report.status_code == 200 and report_took < FAST_ENOUGH_SECONDS
        # Staged in the database, not published: a half-sent file is in nobody's view.
        assert await rows(desk.database_url, CaseAttachment) == [SLOW_UPLOADS]
        assert report.json()["attachments"] == [] and case.json()["attachments"] == []

        answers = await asyncio.wait_for(asyncio.gather(*uploads), UPLOAD_DEADLINE_SECONDS + 10)
    finally:
        for upload in uploads:
            upload.cancel()
    for answer, took in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/problem+json" in answer and b"connection: close" in answer.lower()
        assert UPLOAD_DEADLINE_SECONDS <= took < UPLOAD_DEADLINE_SECONDS + 8
    assert await rows(desk.database_url, CaseAttachment, AttachmentChunk) == [0, 0]


async def stalled_download(port: int, path: str, headers: dict[str, str]) -> tuple[socket.socket, bytes]:
    """Asks for a file and then reads nothing more than the first bytes, with a receive
    buffer so small that the server soon cannot send any further."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, ("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    await loop.sock_sendall(raw, ("\r\n".join(lines) + "\r\n\r\n").encode())
    return raw, await asyncio.wait_for(loop.sock_recv(raw, 1024), 30)


async def test_parallel_uploads_reserve_their_room_while_they_stage(
    fresh_database_url: str, settings: Settings, password_hashing: PasswordHashing
) -> None:
    """Thirty uploads of one receipt at once on a report that may hold 100 kB: only as many
    stage as fit (each reserving the room it may grow to), the others are refused before
    anything of theirs is stored, so parallel uploads cannot stage more than the report
    may hold, however long they last."""
    async with open_desk(
        fresh_database_url, settings, password_hashing, max_bytes=60_000, max_total_bytes_per_case=100_000
    ) as desk:
        token = desk.reporter_headers["Authorization"]
        uploads = [asyncio.create_task(trickling_upload(desk.port, token, size=55_000)) for _ in range(30)]
        try:
            await asyncio.sleep(2.0)  # every upload has sent its first bytes and staged, or been refused
            refused = [upload.result()[0] for upload in uploads if upload.done()]
            staged, chunks = await rows(desk.database_url, CaseAttachment, AttachmentChunk)
            stored = await stored_chunk_bytes(desk.database_url)
        finally:
            for upload in uploads:
                upload.cancel()
    assert staged == 2  # the 55 kB the first declares, then the 45 kB left
    assert len(refused) == 28 and all(answer.startswith(b"HTTP/1.1 409 ") for answer in refused), refused
    assert stored <= 100_000 + chunks * 512  # sealing adds a little to each chunk


async def stored_chunk_bytes(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            return await session.scalar(select(func.coalesce(func.sum(func.length(AttachmentChunk.sealed)), 0)))
    finally:
        await engine.dispose()


async def test_slow_downloads_hold_no_pooled_connection(desk: SlowDesk) -> None:
    big = PDF_HEAD + bytes(range(256)) * (8 * 4096)  # 8 MiB: far more than the socket buffers
    async with httpx.AsyncClient(base_url=desk.url, timeout=120) as client:
        uploaded = await client.post(
            "/api/v1/reporter/attachments",
            files={"file": ("big.pdf", big, "application/pdf")},
            headers=desk.reporter_headers,
        )
        assert uploaded.status_code == 201, uploaded.text
    attachment_id = uploaded.json()["id"]
    readers = [
        (f"/api/v1/reporter/attachments/{attachment_id}", desk.reporter_headers),
        (f"/api/v1/cases/{desk.case_id}/attachments/{attachment_id}", desk.triage_headers),
    ]
    # More stalled readers of each kind than the pool has connections.
    stalled = [
        await stalled_download(desk.port, path, headers) for path, headers in readers for _ in range(2 * POOL_SIZE + 1)
    ]
    try:
        for _, first_bytes in stalled:
            assert first_bytes.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=desk.url, timeout=FAST_ENOUGH_SECONDS) as client:
            ready, took = await timed(client.get("/readyz"))
        assert ready.status_code == 200 and took < FAST_ENOUGH_SECONDS
    finally:
        for raw, _ in stalled:
            raw.close()


async def test_parallel_uploads_respect_the_per_report_limits_exactly(live) -> None:
    limits = live.settings.intake.attachments
    limits.max_per_case, limits.chunk_bytes = 3, 4096
    pdf = PDF_HEAD + b"x" * 10_000

    async def upload(headers: dict[str, str]) -> httpx.Response:
        return await live.client.post(
            "/api/v1/reporter/attachments", files={"file": ("f.pdf", pdf, "application/pdf")}, headers=headers
        )

    headers = await reporter_headers(live.client, await submit_ok(live.client))
    statuses = sorted(response.status_code for response in await asyncio.gather(*(upload(headers) for _ in range(10))))
    assert statuses == [201] * 3 + [409] * 7
    assert await rows(live.url, CaseAttachment) == [3]

    # The total size: as many files fit in parallel as fit one after the other.
    limits.max_per_case, limits.max_total_bytes_per_case = 100, 64 * 1024
    one_by_one = await reporter_headers(live.client, await submit_ok(live.client))
    sequential = [(await upload(one_by_one)).status_code for _ in range(10)]
    fits = sequential.count(201)
    assert 1 < fits < 10 and sequential == [201] * fits + sequential[fits:]
    at_once = await reporter_headers(live.client, await submit_ok(live.client))
    parallel = [response.status_code for response in await asyncio.gather(*(upload(at_once) for _ in range(10)))]
    assert parallel.count(201) == fits and set(parallel) <= {201, 409, 413}
    assert await rows(live.url, CaseAttachment) == [3 + 2 * fits]
    engine = create_async_engine(live.url)
    try:
        async with async_sessionmaker(engine)() as session:
            chunks_of_unpublished = await session.scalar(
                select(func.count())
                .select_from(AttachmentChunk)
                .outerjoin(CaseAttachment, CaseAttachment.id == AttachmentChunk.attachment_id)
                .where(CaseAttachment.case_id.is_(None))
            )
    finally:
        await engine.dispose()
    assert chunks_of_unpublished == 0


async def test_staging_left_by_a_killed_process_is_removed_by_the_cleanup_job(
    settings: Settings, sessionmaker, db_connection
) -> None:
    """A process killed mid-upload leaves staged chunks that no request will clean up; the
    `cleanup.expired` job removes staging older than an upload can last, chunks and all,
    and leaves younger staging and published attachments alone."""
    now = utc_now()
    today = organisation_date(now, settings.zone)
    async with client_for(settings, sessionmaker) as client:
        headers = await reporter_headers(client, await submit_ok(client))
        case_id = (await db_connection.execute(select(Case.id))).scalar_one()
        staged = {}
        for days in (2, 1):  # two days old: abandoned; one day old: may be an upload of last night
            staged[days] = uuid.uuid4()
            await db_connection.execute(
                CaseAttachment.__table__.insert().values(
                    id=staged[days], case_id=None, staging_case_id=case_id, staged_on=today - timedelta(days=days),
                    author="reporter", uploaded_on=today - timedelta(days=days),
                    stored_bytes=0, chunk_bytes=4096, chunk_count=1, sealed_meta=b"",
                )
            )
            await db_connection.execute(
                AttachmentChunk.__table__.insert().values(attachment_id=staged[days], index=0, sealed=b"sealed")
            )
        response = await client.post(
            "/api/v1/reporter/attachments", files={"file": ("a.txt", b"hello there", "text/plain")}, headers=headers
        )
    assert response.status_code == 201, response.text
    published = uuid.UUID(response.json()["id"])
    # An upload no longer cleans up on the request path.
    assert set((await db_connection.execute(select(CaseAttachment.id))).scalars()) == {published, *staged.values()}

    context = AppContext.build(settings, sessionmaker, clock=lambda: now, key_derivation=TEST_KEY_DERIVATION)
    assert (await cleanup_expired(context))["staged_uploads_discarded"] == 1
    assert set((await db_connection.execute(select(CaseAttachment.id))).scalars()) == {published, staged[1]}
    assert await db_connection.scalar(
        select(func.count()).select_from(AttachmentChunk).where(AttachmentChunk.attachment_id == staged[2])
    ) == 0
    assert (await cleanup_expired(context))["staged_uploads_discarded"] == 0
