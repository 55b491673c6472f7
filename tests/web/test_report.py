"""`/report` and `/internal/report` over HTTP: the form, its errors, check your answers,
the receipt; and what a script or another site meets (the form ticket, the honeypot, the
budget, a cross-site post)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from app.cases.models import Case
from app.identity.models import CaseIdentity

FIELDS = {
    "category": "bribery",
    "org_unit": "construction_transport",
    "summary": "허가 담당자가 돈을 요구함 WEBMARK",
    "details": "The permit officer asked for an envelope before signing.\nTwice.",
    "where": "3층 민원실",
}


def hidden(html: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name}"
    return match.group(1)


def carried(html: str) -> dict[str, str]:
    """Every hidden field of the page's form, as a browser would send it back."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


async def cases(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Case))


async def open_form(client: httpx.AsyncClient, path: str = "/report") -> dict[str, str]:
    page = await client.get(path)
    assert page.status_code == 200
    return {"ticket": hidden(page.text, "ticket"), "idempotency_key": hidden(page.text, "idempotency_key")}


async def test_the_form_is_served_with_a_ticket_and_labelled_fields(client: httpx.AsyncClient) -> None:
    page = await client.get("/report")
    assert page.status_code == 200 and "set-cookie" not in page.headers
    html = page.text
    assert "novalidate" in html and 'action="/report"' in html
    for name in ("summary", "details", "when", "where", "persons_involved", "how_known", "evidence", "name", "email", "phone"):
        assert f'<label class="label" for="{name}">' in html and f'id="{name}"' in html, name
    assert 'name="department"' not in html  # the employee portal's field
    assert 'name="website"' in html and 'tabindex="-1"' in html  # the honeypot
    assert (await client.get("/report?lang=en")).text.count('action="/report?lang=en"') == 1


async def test_an_empty_form_comes_back_with_every_error_linked_and_nothing_stored(client, sessionmaker, clock) -> None:
    before = await cases(sessionmaker)
    form = await open_form(client)
    page = await client.post("/report", data={**form, "step": "check", "when": "작년 봄"})
    assert page.status_code == 422
    html = page.text
    assert "<title>오류: 국민 신고" in html
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S).group(0)
    assert re.findall(r'href="#(\w+)"', summary) == ["category", "summary", "details"]
    assert 'id="summary-error"' in html and 'aria-describedby="summary-hint summary-error" aria-invalid="true"' in html
    assert "작년 봄</textarea>" in html  # what was typed is kept
    assert hidden(html, "ticket") == form["ticket"]
    assert await cases(sessionmaker) == before


async def test_check_your_answers_then_send_gives_a_receipt_that_opens_the_mailbox(client, sessionmaker, clock) -> None:
    before = await cases(sessionmaker)
    form = await open_form(client)
    check = await client.post("/report", data={**form, **FIELDS, "step": "check"})
    assert check.status_code == 200, check.text
    assert "보내기 전에 입력 내용을 확인하세요" in check.text and "허가 담당자가 돈을 요구함 WEBMARK" in check.text
    assert "없음: 익명으로 신고합니다" in check.text
    assert await cases(sessionmaker) == before  # nothing stored before the report is sent

    clock.now += timedelta(seconds=30)
    sent = await client.post("/report", data={**carried(check.text), "step": "send"})
    assert sent.status_code == 200, sent.text
    groups = re.findall(r'<span class="receipt-group">(\d{3})</span>', sent.text)
    assert len(groups) == 7
    assert await cases(sessionmaker) == before + 1
    session = await client.post("/api/v1/reporter/sessions", json={"receipt": "-".join(groups)})
    assert session.status_code == 201
    report = (await client.get("/api/v1/reporter/report", headers={"Authorization": f"Bearer {session.json()['token']}"})).json()
    assert report["channel"] == "citizen" and report["contact"] is None
    assert report["content"]["details"] == FIELDS["details"] and report["content"]["where"] == "3층 민원실"

    # Sent twice (a double click, a reload): the same receipt, no second report.
    again = await client.post("/report", data={**carried(check.text), "step": "send"})
    assert re.findall(r'<span class="receipt-group">(\d{3})</span>', again.text) == groups
    assert await cases(sessionmaker) == before + 1
    # The same form with another key is a second use of its ticket: refused.
    reused = await client.post("/report", data={**carried(check.text), "idempotency_key": "k" * 24, "step": "send"})
    assert reused.status_code == 409 and "이미 보낸 신고입니다" in reused.text


async def test_the_ticket_refuses_a_send_too_fast_or_too_late(client, sessionmaker, clock) -> None:
    before = await cases(sessionmaker)
    form = await open_form(client)
    fast = await client.post("/report", data={**form, **FIELDS, "step": "send"})
    assert fast.status_code == 422 and "너무 빨리" in fast.text
    assert hidden(fast.text, "ticket") == form["ticket"]
    clock.now += timedelta(hours=13)
    late = await client.post("/report", data={**carried(fast.text), "step": "send"})
    assert late.status_code == 422 and "너무 오래" in late.text
    renewed = hidden(late.text, "ticket")
    assert renewed != form["ticket"]
    forged = await client.post("/report", data={**carried(late.text), "ticket": "AAAA", "step": "send"})
    assert forged.status_code == 422
    assert await cases(sessionmaker) == before
    clock.now += timedelta(seconds=30)
    sent = await client.post("/report", data={**carried(late.text), "step": "send"})
    assert sent.status_code == 200 and await cases(sessionmaker) == before + 1


async def test_a_filled_honeypot_or_a_post_from_another_site_stores_nothing(client, sessionmaker, clock) -> None:
    before = await cases(sessionmaker)
    form = await open_form(client)
    clock.now += timedelta(seconds=30)
    trapped = await client.post("/report", data={**form, **FIELDS, "website": "http://spam.example", "step": "send"})
    assert trapped.status_code == 400
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "same-site"}):
        refused = await client.post("/report", data={**form, **FIELDS, "step": "send"}, headers=headers)
        assert refused.status_code == 403, headers
    assert await cases(sessionmaker) == before
    # The same post from our own page goes through.
    own = await client.post("/report", data={**form, **FIELDS, "step": "send"}, headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"})
    assert own.status_code == 200 and await cases(sessionmaker) == before + 1


async def test_past_the_form_budget_a_report_is_refused_with_a_time_to_come_back(app, client, sessionmaker, clock) -> None:
    settings = app.state.context.settings
    settings.web.form_submissions_per_window = 1
    try:
        first, second = await open_form(client), await open_form(client)
        clock.now += timedelta(seconds=30)
        assert (await client.post("/report", data={**first, **FIELDS, "step": "send"})).status_code == 200
        before = await cases(sessionmaker)
        paused = await client.post("/report", data={**second, **FIELDS, "step": "send"})
        assert paused.status_code == 429 and int(paused.headers["retry-after"]) > 0
        assert "분 뒤에 다시 보내기를 누르세요" in paused.text
        assert carried(paused.text)["summary"] == FIELDS["summary"]  # the answers are kept, to send later
        assert await cases(sessionmaker) == before
        # Proof of work (the API, or a page with JavaScript) is not paused.
        from tests.intake.helpers import report_body, submit_ok

        await submit_ok(client, report_body("api still open"))
    finally:
        settings.web.form_submissions_per_window = 600


async def test_the_employee_portal_identifies_confidentially(client, sessionmaker, clock) -> None:
    page = await client.get("/internal/report?lang=en")
    assert 'name="department"' in page.text and "Report as an employee" in page.text
    form = {"ticket": hidden(page.text, "ticket"), "idempotency_key": hidden(page.text, "idempotency_key")}
    identity = {"identify": "yes", "name": "홍길동 IDWEB", "department": "회계과", "phone": "010-1234-5678"}
    missing = await client.post("/internal/report?lang=en", data={**form, **FIELDS, "identify": "yes", "step": "check"})
    assert missing.status_code == 422 and "Enter at least a name" in missing.text
    check = await client.post("/internal/report?lang=en", data={**form, **FIELDS, **identity, "step": "check"})
    assert "홍길동 IDWEB" in check.text and "회계과" in check.text
    clock.now += timedelta(seconds=30)
    sent = await client.post("/internal/report?lang=en", data={**carried(check.text), "step": "send"})
    assert sent.status_code == 200, sent.text
    async with sessionmaker() as session:
        newest = (await session.scalars(select(Case).where(Case.channel == "employee"))).all()
        assert len(newest) == 1
        assert await session.get(CaseIdentity, newest[0].id) is not None  # sealed apart, not in the report
    # Chose "no": whatever was typed in the contact fields is not sent.
    form2 = await open_form(client, "/internal/report")
    check2 = await client.post("/internal/report", data={**form2, **FIELDS, "identify": "no", "name": "typed then changed mind", "step": "check"})
    clock.now += timedelta(seconds=30)
    await client.post("/internal/report", data={**carried(check2.text), "step": "send"})
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CaseIdentity)) == 1


def multipart(fields: dict[str, str], file: tuple[str, bytes, str] | None) -> list:
    """The check page's send form as a browser sends it: the fields, then the file."""
    parts = [(name, (None, value)) for name, value in fields.items()]
    parts.append(("file", file if file is not None else ("", b"", "application/octet-stream")))
    return parts


async def checked(client: httpx.AsyncClient, path: str = "/report") -> dict[str, str]:
    form = await open_form(client, path)
    check = await client.post(path, data={**form, **FIELDS, "step": "check"})
    assert check.status_code == 200
    return {**carried(check.text), "step": "send"}


async def test_a_file_sent_with_the_report_is_attached_to_it(client, sessionmaker, clock) -> None:
    fields = await checked(client)
    clock.now += timedelta(seconds=30)
    evidence = "2026-03-02 상품권 50만원 FILEWEBMARK\n".encode() * 40
    sent = await client.post("/report", files=multipart(fields, ("ledger.txt", evidence, "text/plain")))
    assert sent.status_code == 200, sent.text
    assert "파일이 신고에 첨부되었습니다" in sent.text
    receipt = "-".join(re.findall(r'<span class="receipt-group">(\d{3})</span>', sent.text))
    session = await client.post("/api/v1/reporter/sessions", json={"receipt": receipt})
    headers = {"Authorization": f"Bearer {session.json()['token']}"}
    (attachment,) = (await client.get("/api/v1/reporter/report", headers=headers)).json()["attachments"]
    assert attachment["filename"] == "ledger.txt" and attachment["size_bytes"] == len(evidence)
    downloaded = await client.get(f"/api/v1/reporter/attachments/{attachment['id']}", headers=headers)
    assert downloaded.content == evidence
    async with sessionmaker() as session_db:
        stored = (await session_db.scalars(select(Case))).all()
    assert len(stored) == 1 and FIELDS["summary"].encode() not in stored[0].sealed_report

    # Sent again (a reload): the same receipt, and the file is not attached a second time.
    again = await client.post("/report", files=multipart(fields, ("ledger.txt", evidence, "text/plain")))
    assert receipt == "-".join(re.findall(r'<span class="receipt-group">(\d{3})</span>', again.text))
    assert len((await client.get("/api/v1/reporter/report", headers=headers)).json()["attachments"]) == 1


async def test_a_refused_file_does_not_lose_the_report_and_no_file_is_fine(client, sessionmaker, clock) -> None:
    fields = await checked(client)
    clock.now += timedelta(seconds=30)
    refused = await client.post("/report", files=multipart(fields, ("tool.exe", b"MZ\x90\x00" * 200, "application/octet-stream")))
    assert refused.status_code == 200 and len(re.findall(r'class="receipt-group"', refused.text)) == 7
    assert "신고는 접수되었지만 파일은 첨부되지 않았습니다" in refused.text and "첨부할 수 없습니다" in refused.text
    without = await checked(client)
    clock.now += timedelta(seconds=30)
    none = await client.post("/report", files=multipart(without, None))  # no file chosen: an empty part
    assert none.status_code == 200 and "파일이 신고에 첨부되었습니다" not in none.text
    assert await cases(sessionmaker) == 2


async def test_a_file_with_a_form_in_error_stores_nothing_and_big_plain_forms_are_refused(client, sessionmaker, clock) -> None:
    before = await cases(sessionmaker)
    fields = {**await checked(client), "summary": ""}
    clock.now += timedelta(seconds=30)
    wrong = await client.post("/report", files=multipart(fields, ("a.txt", b"text " * 100, "text/plain")))
    assert wrong.status_code == 422 and 'id="summary-error"' in wrong.text
    huge = await client.post("/report", data={**fields, "details": "x" * 1_200_000})
    assert huge.status_code == 413
    assert await cases(sessionmaker) == before
