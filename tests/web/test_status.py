"""`/status` over HTTP: the receipt (typed any way, mistyped), the mailbox with no cookie,
a reply, a file, an answer to an identity request, and the refusals."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from app.cases.models import CaseAttachment, CaseMessage
from app.identity.models import IdentityRequest
from tests.identity.conftest import office  # noqa: F401  (an office for the identity request)
from tests.identity.helpers import Office
from tests.intake.helpers import report_body, submit_ok


def session_of(html: str) -> str:
    match = re.search(r'<input type="hidden" name="session" value="([^"]+)"', html)
    assert match, "no session on the page"
    return match.group(1)


async def open_mailbox(client: httpx.AsyncClient, typed: str, lang: str = "") -> httpx.Response:
    return await client.post(f"/status{lang}", data={"step": "open", "receipt": typed})


async def test_a_receipt_typed_with_spaces_opens_the_mailbox_and_a_typo_gets_its_own_message(client: httpx.AsyncClient) -> None:
    receipt = await submit_ok(client, report_body("status page"))
    form = await client.get("/status")
    assert form.status_code == 200 and 'name="receipt"' in form.text and "set-cookie" not in form.headers

    digits = receipt.replace("-", "")
    typo = digits[:5] + str((int(digits[5]) + 1) % 10) + digits[6:]
    mistyped = await open_mailbox(client, typo)
    assert mistyped.status_code == 422 and "한 자리씩 확인하세요" in mistyped.text and 'aria-invalid="true"' in mistyped.text
    assert f'value="{typo}"' in mistyped.text  # kept, to correct
    short = await open_mailbox(client, digits[:-1], "?lang=en")
    assert short.status_code == 422 and "A receipt has 21 digits" in short.text and "<title>Error:" in short.text
    letters = await open_mailbox(client, "abc")
    assert letters.status_code == 422 and "숫자로만" in letters.text

    spaced = " ".join(digits[i : i + 3] for i in range(0, 21, 3))
    opened = await open_mailbox(client, spaced)
    assert opened.status_code == 200 and "set-cookie" not in opened.headers
    assert "나의 신고" in opened.text and "접수됨" in opened.text and "status page" in opened.text
    assert session_of(opened.text).startswith("cwr_")
    dashed = await open_mailbox(client, receipt, "?lang=en")
    assert "Your report" in dashed.text and "Received" in dashed.text


async def test_an_unknown_receipt_is_refused_and_an_old_session_asks_again(client, clock) -> None:
    unknown = await open_mailbox(client, "000-000-000-000-000-000-000")
    assert unknown.status_code == 401 and "이 접수번호의 신고가 없습니다" in unknown.text
    receipt = await submit_ok(client, report_body("old session"))
    session = session_of((await open_mailbox(client, receipt)).text)
    clock.now += timedelta(hours=3)
    expired = await client.post("/status", data={"session": session, "step": "reply", "body": "late"})
    assert expired.status_code == 401 and 'name="receipt"' in expired.text and "다시 입력하세요" in expired.text
    forged = await client.post("/status", data={"session": "cwr_forged", "step": "reply", "body": "x"})
    assert forged.status_code == 401


async def test_a_reply_and_a_file_go_into_the_report(client, sessionmaker) -> None:
    receipt = await submit_ok(client, report_body("thread"))
    page = await open_mailbox(client, receipt)
    session = session_of(page.text)
    empty = await client.post("/status", data={"session": session, "step": "reply", "body": "   "})
    assert empty.status_code == 422 and "보낼 메시지를 적어 주세요" in empty.text
    sent = await client.post("/status", data={"session": session, "step": "reply", "body": "추가 정보 REPLYMARK\n두 번째 줄"})
    assert sent.status_code == 200 and "메시지를 보냈습니다" in sent.text and "추가 정보 REPLYMARK" in sent.text

    files = [("session", (None, session)), ("file", ("ledger.txt", b"evidence FILEMARK " * 50, "text/plain"))]
    uploaded = await client.post("/status/attachments", files=files)
    assert uploaded.status_code == 200, uploaded.text
    assert "파일을 첨부했습니다" in uploaded.text and "ledger.txt" in uploaded.text
    wrong = await client.post("/status/attachments", files=[("session", (None, session)), ("file", ("x.exe", b"MZ\x90\x00" * 100, "application/octet-stream"))])
    assert wrong.status_code == 415 and "첨부할 수 없습니다" in wrong.text
    no_session = await client.post("/status/attachments", files=[("file", ("a.txt", b"text", "text/plain"))])
    assert no_session.status_code == 401
    async with sessionmaker() as session_db:
        assert len((await session_db.scalars(select(CaseAttachment).where(CaseAttachment.case_id.is_not(None)))).all()) == 1
        bodies = (await session_db.scalars(select(CaseMessage))).all()
        assert len(bodies) == 1 and b"REPLYMARK" not in bodies[0].sealed_body


async def test_posts_from_another_site_are_refused(client) -> None:
    receipt = await submit_ok(client, report_body("csrf"))
    session = session_of((await open_mailbox(client, receipt)).text)
    for path, data in (("/status", {"session": session, "step": "reply", "body": "forged"}), ("/status", {"step": "open", "receipt": receipt})):
        refused = await client.post(path, data=data, headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
    upload = await client.post("/status/attachments", files=[("session", (None, session)), ("file", ("a.txt", b"t", "text/plain"))], headers={"Origin": "https://evil.example"})
    assert upload.status_code == 403


async def test_the_reporter_answers_an_identity_request_on_the_page(office: Office) -> None:  # noqa: F811
    receipt, case_id = await office.file_identified_report("status identity")
    await office.assign_and_grant(case_id)
    request_id = (await office.ask(case_id, "investigator")).json()["id"]
    page = await open_mailbox(office.client, receipt, "?lang=en")
    assert "A request to know who you are" in page.text and "We need to interview the reporter" in page.text
    assert "(investigator)" in page.text and 'name="answer" type="radio" value="consent"' in page.text
    korean = await open_mailbox(office.client, receipt)
    assert "(조사관)" in korean.text
    answered = await office.client.post(
        "/status?lang=en", data={"session": session_of(page.text), "step": "identity", "request": request_id, "answer": "consent"}
    )
    assert answered.status_code == 200 and "Your answer was recorded" in answered.text and "You agreed" in answered.text
    async with office.sessionmaker() as session:
        assert (await session.get(IdentityRequest, uuid.UUID(request_id))).status == "consented"
    stale = await office.client.post(
        "/status", data={"session": session_of(page.text), "step": "identity", "request": "not-a-uuid", "answer": "consent"}
    )
    assert stale.status_code == 409
