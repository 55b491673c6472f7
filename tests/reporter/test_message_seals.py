"""Messages whose seal does not open, as the reporter's mailbox meets them: a staff client
the server cannot check, a database writer who changes a message's author, and messages
sealed before authors were bound into the seal."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cases.models import CaseAttachment, CaseMessage
from app.domain import crypto
from app.domain.staff import Role
from app.staff.models import StaffUser
from tests.cases.helpers import bearer, register_key
from tests.intake.helpers import report_body, reporter_headers, submit_ok


@dataclass
class Thread:
    """A report sealed to a triage officer, who holds its content key on their machine."""

    case_id: uuid.UUID
    content_key: bytes
    officer: StaffUser
    staff_headers: dict[str, str]
    reporter_headers: dict[str, str]

    async def post_staff_message(self, client: httpx.AsyncClient, sealed_body: bytes, message_id: uuid.UUID) -> None:
        response = await client.post(
            f"/api/v1/cases/{self.case_id}/messages",
            json={"id": str(message_id), "sealed_body": crypto.b64url_encode(sealed_body), "seal_format": 2},
            headers=self.staff_headers,
        )
        assert response.status_code == 201, response.text

    async def reply(self, client: httpx.AsyncClient, body: str) -> uuid.UUID:
        message_id = uuid.uuid4()
        sealed = crypto.seal_message(self.content_key, body, case_id=self.case_id, message_id=message_id, author="staff")
        await self.post_staff_message(client, sealed, message_id)
        return message_id

    async def mailbox(self, client: httpx.AsyncClient) -> list[dict]:
        response = await client.get("/api/v1/reporter/report", headers=self.reporter_headers)
        assert response.status_code == 200, response.text
        return response.json()["messages"]


@pytest.fixture
async def thread(client: httpx.AsyncClient, staff) -> Thread:
    officer = await staff.create(Role.TRIAGE)
    headers = bearer(await staff.token_for(officer))
    key = await register_key(client, headers)  # before the report: it is sealed to this key
    receipt = await submit_ok(client, report_body("SEALS"))
    case_id = (await client.get("/api/v1/cases", headers=headers)).json()["items"][0]["id"]
    detail = (await client.get(f"/api/v1/cases/{case_id}", headers=headers)).json()
    content_key = crypto.open_content_key(
        crypto.b64url_decode(detail["content_key"]["sealed_key"]), key, uuid.UUID(case_id)
    )
    return Thread(uuid.UUID(case_id), content_key, officer, headers, await reporter_headers(client, receipt))


def random_bytes_of_a_valid_length(thread: Thread, message_id: uuid.UUID) -> bytes:
    return os.urandom(crypto.NONCE_BYTES + crypto.PADDING_QUANTUM + 16)


def sealed_under_another_key(thread: Thread, message_id: uuid.UUID) -> bytes:
    return crypto.seal_message(
        crypto.new_content_key(), "not for this case", case_id=thread.case_id, message_id=message_id, author="staff"
    )


def sealed_text_that_is_not_utf8(thread: Thread, message_id: uuid.UUID) -> bytes:
    return crypto.seal(
        thread.content_key,
        b"\xff\xfe\xc3\x28 latin-1 caf\xe9",
        purpose=crypto.message_purpose("staff"),
        case_id=thread.case_id,
        item_id=message_id,
    )


@pytest.mark.parametrize(
    "bad_seal", [random_bytes_of_a_valid_length, sealed_under_another_key, sealed_text_that_is_not_utf8]
)
async def test_a_staff_message_that_does_not_open_leaves_the_rest_of_the_mailbox_readable(
    client: httpx.AsyncClient, thread: Thread, bad_seal
) -> None:
    sent = await client.post(
        "/api/v1/reporter/messages", json={"body": "I have the invoice."}, headers=thread.reporter_headers
    )
    assert sent.status_code == 201, sent.text
    await thread.reply(client, "Thank you. When did you receive it?")
    bad_id = uuid.uuid4()
    await thread.post_staff_message(client, bad_seal(thread, bad_id), bad_id)  # the server cannot tell
    await thread.reply(client, "Please send a copy.")

    for _ in range(2):  # and on every later visit
        messages = await thread.mailbox(client)
        assert [(m["seq"], m["author"], m["body"], m["readable"]) for m in messages] == [
            (1, "reporter", "I have the invoice.", True),
            (2, "staff", "Thank you. When did you receive it?", True),
            (3, "staff", None, False),
            (4, "staff", "Please send a copy.", True),
        ]
        assert messages[2]["id"] == str(bad_id) and messages[2]["author_verified"] is False
        assert all(m["author_verified"] for m in messages if m["readable"])


async def test_changing_a_messages_author_in_the_database_makes_it_unreadable(
    client: httpx.AsyncClient, db_connection: AsyncConnection, thread: Thread
) -> None:
    await client.post("/api/v1/reporter/messages", json={"body": "The reporter wrote this."}, headers=thread.reporter_headers)
    staff_message = await thread.reply(client, "Staff wrote this.")
    await thread.reply(client, "Staff wrote this too.")
    # Someone with write access to the database, but no key, swaps the two authors.
    await db_connection.execute(
        update(CaseMessage)
        .where(CaseMessage.id == staff_message)
        .values(author="reporter", staff_user_id=None, sent_at=None)
    )
    await db_connection.execute(
        update(CaseMessage)
        .where(CaseMessage.case_id == thread.case_id, CaseMessage.seq == 1)
        .values(author="staff", staff_user_id=thread.officer.id, sent_at=datetime.now(UTC))
    )

    messages = await thread.mailbox(client)
    assert [(m["seq"], m["author"], m["body"], m["readable"], m["author_verified"]) for m in messages] == [
        (1, "staff", None, False, False),
        (2, "reporter", None, False, False),  # never shown as the reporter's own statement
        (3, "staff", "Staff wrote this too.", True, True),
    ]


async def test_messages_sealed_before_authors_were_bound_still_open_marked_unverified(
    client: httpx.AsyncClient, db_connection: AsyncConnection, thread: Thread
) -> None:
    today = datetime.now(UTC)
    for seq, author, body in ((1, "reporter", "Sealed the old way by the server."), (2, "staff", "구 버전 답장")):
        message_id = uuid.uuid4()
        await db_connection.execute(
            CaseMessage.__table__.insert().values(
                id=message_id,
                case_id=thread.case_id,
                seq=seq,
                author=author,
                staff_user_id=thread.officer.id if author == "staff" else None,
                sent_on=today.date(),
                sent_at=today if author == "staff" else None,
                # Format 1, exactly as messages were sealed before this change.
                sealed_body=crypto.seal(
                    thread.content_key, body.encode(), purpose=crypto.PURPOSE_MESSAGE, case_id=thread.case_id, item_id=message_id
                ),
            )
        )
    await thread.reply(client, "A new reply.")

    messages = await thread.mailbox(client)
    assert [(m["author"], m["body"], m["readable"], m["author_verified"]) for m in messages] == [
        ("reporter", "Sealed the old way by the server.", True, False),
        ("staff", "구 버전 답장", True, False),
        ("staff", "A new reply.", True, True),
    ]


@pytest.mark.parametrize("seal_format", [None, 1, "2", 3])
async def test_a_staff_message_in_another_seal_format_is_refused(
    client: httpx.AsyncClient, db_connection: AsyncConnection, thread: Thread, seal_format
) -> None:
    message_id = uuid.uuid4()
    body = {
        "id": str(message_id),
        "sealed_body": crypto.b64url_encode(
            crypto.seal(thread.content_key, b"old client", purpose=crypto.PURPOSE_MESSAGE, case_id=thread.case_id, item_id=message_id)
        ),
    }
    if seal_format is not None:
        body["seal_format"] = seal_format
    response = await client.post(f"/api/v1/cases/{thread.case_id}/messages", json=body, headers=thread.staff_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "update cleanwindow" in response.json()["detail"]
    assert await db_connection.scalar(select(func.count()).select_from(CaseMessage)) == 0


async def test_a_format_1_seal_posted_as_format_2_does_not_open(
    client: httpx.AsyncClient, db_connection: AsyncConnection, thread: Thread
) -> None:
    """Each message is opened in the format stored with it: a body sealed without its
    author can no longer pass for a new message (where a database writer could then give
    it another author), and marking a new message as format 1 in the database does not
    help either."""
    claimed = uuid.uuid4()
    old_seal = crypto.seal(
        thread.content_key, b"no author bound", purpose=crypto.PURPOSE_MESSAGE, case_id=thread.case_id, item_id=claimed
    )
    await thread.post_staff_message(client, old_seal, claimed)
    downgraded = await thread.reply(client, "Sealed with its author.")
    await db_connection.execute(update(CaseMessage).where(CaseMessage.id == downgraded).values(seal_format=1))

    messages = await thread.mailbox(client)
    assert [(m["id"], m["body"], m["readable"]) for m in messages] == [
        (str(claimed), None, False),
        (str(downgraded), None, False),
    ]


async def upload(client: httpx.AsyncClient, headers: dict[str, str], name: str, body: bytes) -> str:
    response = await client.post(
        "/api/v1/reporter/attachments", files={"file": (name, body, "text/plain")}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_a_damaged_attachment_leaves_the_rest_of_the_report_readable(
    client: httpx.AsyncClient, db_connection: AsyncConnection, thread: Thread
) -> None:
    """The same promise for attachments: a description that does not open (a database
    writer changed a bit) is marked, the rest is shown, and the file is refused with a
    4xx, never a 500."""
    good = await upload(client, thread.reporter_headers, "kept.txt", b"a receipt for 3,000,000 won")
    damaged = await upload(client, thread.reporter_headers, "damaged.txt", b"the second invoice")
    sealed_meta = await db_connection.scalar(
        select(CaseAttachment.sealed_meta).where(CaseAttachment.id == uuid.UUID(damaged))
    )
    flipped = sealed_meta[:-1] + bytes([sealed_meta[-1] ^ 1])
    await db_connection.execute(
        update(CaseAttachment).where(CaseAttachment.id == uuid.UUID(damaged)).values(sealed_meta=flipped)
    )

    for _ in range(2):  # and on every later visit
        report = await client.get("/api/v1/reporter/report", headers=thread.reporter_headers)
        assert report.status_code == 200, report.text
        attachments = {item["id"]: item for item in report.json()["attachments"]}
        assert (attachments[good]["filename"], attachments[good]["readable"]) == ("kept.txt", True)
        assert attachments[damaged]["readable"] is False
        assert attachments[damaged]["filename"] is None and attachments[damaged]["size_bytes"] is None

    refused = await client.get(f"/api/v1/reporter/attachments/{damaged}", headers=thread.reporter_headers)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:cleanwindow:problem:attachment-unreadable"
    kept = await client.get(f"/api/v1/reporter/attachments/{good}", headers=thread.reporter_headers)
    assert kept.status_code == 200 and kept.content == b"a receipt for 3,000,000 won"
