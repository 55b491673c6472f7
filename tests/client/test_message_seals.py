"""`cases show` when some messages do not open: the rest of the case is shown and each bad
one is marked, in the text and in `--json`, never a refusal of the whole case or a
traceback. Against a running server, with bad messages posted through the real API and
authors changed with SQL, as an attacker would."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from app.cases.models import CaseAttachment, CaseMessage
from app.domain import crypto
from tests.client.helpers import Desk


def content_key_of(desk: Desk) -> bytes:
    detail = httpx.get(
        f"{desk.server.url}/api/v1/cases/{desk.case_id}",
        headers={"Authorization": f"Bearer {desk.triage.token}"},
    ).json()
    private_key = crypto.PrivateKey.from_file_text(desk.triage.key_path.read_text())
    return crypto.open_content_key(
        crypto.b64url_decode(detail["content_key"]["sealed_key"]),
        private_key,
        uuid.UUID(desk.case_id),
    )


def post_staff_message(desk: Desk, message_id: uuid.UUID, sealed_body: bytes) -> None:
    response = httpx.post(
        f"{desk.server.url}/api/v1/cases/{desk.case_id}/messages",
        json={
            "id": str(message_id),
            "sealed_body": crypto.b64url_encode(sealed_body),
            "seal_format": 2,
        },
        headers={"Authorization": f"Bearer {desk.triage.token}"},
    )
    assert response.status_code == 201, response.text


def reply(desk: Desk, text: str) -> None:
    desk.server.ok(
        "cases", "reply", desk.case_id, "--key", str(desk.triage.key_path),
        officer=desk.triage, input=text + "\n",
    )  # fmt: skip


async def change_in_the_database(desk: Desk, seq: int, **values: object) -> None:
    engine = create_async_engine(desk.server.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(CaseMessage)
                .where(CaseMessage.case_id == uuid.UUID(desk.case_id), CaseMessage.seq == seq)
                .values(**values)
            )
    finally:
        await engine.dispose()


def show(desk: Desk, *extra: str):
    result = desk.server.cli(
        "cases", "show", desk.case_id, "--key", str(desk.triage.key_path), *extra,
        token=desk.triage.token,
    )  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.exception is None and "Traceback" not in result.stderr
    return result


async def test_show_prints_the_messages_that_open_and_marks_those_that_do_not(desk: Desk) -> None:
    key, case_id = content_key_of(desk), uuid.UUID(desk.case_id)
    reply(desk, "First reply, readable.")
    bad_seals = [
        lambda _: os.urandom(crypto.NONCE_BYTES + crypto.PADDING_QUANTUM + 16),  # valid length
        lambda message_id: crypto.seal_message(  # sealed under another case's key
            crypto.new_content_key(), "elsewhere", case_id=case_id, message_id=message_id,
            author="staff",
        ),
        lambda message_id: crypto.seal(  # opens, but the text is not UTF-8
            key, b"\xff\xfe caf\xe9", purpose=crypto.message_purpose("staff"),
            case_id=case_id, item_id=message_id,
        ),
    ]  # fmt: skip
    for bad_seal in bad_seals:
        message_id = uuid.uuid4()
        post_staff_message(desk, message_id, bad_seal(message_id))
    reply(desk, "Last reply, readable.")

    text = show(desk)
    assert desk.marker in text.stdout  # the report itself
    assert "First reply, readable." in text.stdout and "Last reply, readable." in text.stdout
    assert text.stdout.count("[does not open:") == 3
    for seq in (2, 3, 4):
        assert f"message #{seq} of case {desk.case_id} does not open" in text.stderr

    document = json.loads(show(desk, "--json").stdout)
    assert [(m["seq"], m["body"], m["readable"]) for m in document["messages"]] == [
        (1, "First reply, readable.", True),
        (2, None, False),
        (3, None, False),
        (4, None, False),
        (5, "Last reply, readable.", True),
    ]


async def test_a_message_whose_author_was_changed_is_unreadable_not_the_reporters(
    desk: Desk,
) -> None:
    reply(desk, "Staff wrote this.")
    reporter = await desk.server.reporter(desk.receipt)
    sent = httpx.post(
        f"{desk.server.url}/api/v1/reporter/messages",
        json={"body": "The reporter wrote this."},
        headers=reporter,
    )
    assert sent.status_code == 201, sent.text
    await change_in_the_database(desk, 1, author="reporter", staff_user_id=None, sent_at=None)

    document = json.loads(show(desk, "--json").stdout)
    assert [(m["author"], m["body"], m["readable"]) for m in document["messages"]] == [
        ("reporter", None, False),
        ("reporter", "The reporter wrote this.", True),
    ]
    text = show(desk).stdout
    assert "Staff wrote this." not in text and text.count("[does not open:") == 1

    mailbox = httpx.get(f"{desk.server.url}/api/v1/reporter/report", headers=reporter)
    assert mailbox.status_code == 200
    assert [(m["author"], m["body"]) for m in mailbox.json()["messages"]] == [
        ("reporter", None),
        ("reporter", "The reporter wrote this."),
    ]


async def test_a_message_sealed_the_old_way_opens_marked_unverified(desk: Desk) -> None:
    key, case_id = content_key_of(desk), uuid.UUID(desk.case_id)
    me = httpx.get(
        f"{desk.server.url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {desk.triage.token}"},
    ).json()
    legacy_id, now = uuid.uuid4(), datetime.now(UTC)
    engine = create_async_engine(desk.server.database_url)
    try:
        async with engine.begin() as connection:  # a reply stored before the upgrade, format 1
            await connection.execute(
                CaseMessage.__table__.insert().values(
                    id=legacy_id, case_id=case_id, seq=1, author="staff",
                    staff_user_id=uuid.UUID(me["id"]), sent_on=now.date(), sent_at=now,
                    sealed_body=crypto.seal(
                        key, "예전 답장".encode(), purpose=crypto.PURPOSE_MESSAGE,
                        case_id=case_id, item_id=legacy_id,
                    ),
                )
            )  # fmt: skip
    finally:
        await engine.dispose()
    reply(desk, "New reply.")

    document = json.loads(show(desk, "--json").stdout)
    assert [(m["body"], m["readable"], m["author_verified"]) for m in document["messages"]] == [
        ("예전 답장", True, False),
        ("New reply.", True, True),
    ]
    text = show(desk).stdout
    assert "예전 답장" in text and "New reply." in text
    assert text.count("[author unverified: sealed before authors were bound]") == 1


async def test_show_marks_a_damaged_attachment_and_download_refuses_it_in_one_line(desk: Desk, tmp_path) -> None:
    async with httpx.AsyncClient(base_url=desk.server.url) as client:
        session = await client.post("/api/v1/reporter/sessions", json={"receipt": desk.receipt})
        assert session.status_code == 201, session.text
        reporter = {"Authorization": f"Bearer {session.json()['token']}"}
        ids = []
        for name in ("kept.txt", "damaged.txt"):
            uploaded = await client.post(
                "/api/v1/reporter/attachments", files={"file": (name, b"evidence " + name.encode(), "text/plain")},
                headers=reporter,
            )  # fmt: skip
            assert uploaded.status_code == 201, uploaded.text
            ids.append(uploaded.json()["id"])
    kept, damaged = ids
    engine = create_async_engine(desk.server.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(CaseAttachment).where(CaseAttachment.id == uuid.UUID(damaged)).values(sealed_meta=os.urandom(600))
            )
    finally:
        await engine.dispose()

    text = show(desk)
    assert desk.marker in text.stdout and "kept.txt" in text.stdout and "[does not open]" in text.stdout
    assert f"attachment {damaged} of case {desk.case_id} does not open" in text.stderr
    document = json.loads(show(desk, "--json").stdout)
    assert {a["id"]: (a["filename"], a["readable"]) for a in document["attachments"]} == {
        kept: ("kept.txt", True),
        damaged: (None, False),
    }

    refused = desk.server.cli(
        "cases", "download", desk.case_id, damaged, "--key", str(desk.triage.key_path), "--out", str(tmp_path / "f"),
        token=desk.triage.token,
    )  # fmt: skip
    assert refused.exit_code == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"cleanwindow: attachment {damaged} of case {desk.case_id} does not open (damaged); nothing written"
    )
    assert not (tmp_path / "f").exists()
