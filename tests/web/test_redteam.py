"""Red-team probes over the pages (a helper's pass): long Korean reports, a re-send, an edit after
sending, a chunked body over the limit, garbage posts, headers on every page answer."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.web.test_report import FIELDS, cases, checked, hidden, multipart, open_form

HTML = "text/html"


def is_page(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(HTML)


async def test_a_long_korean_report_within_the_limits_reaches_the_check_page(client, clock) -> None:
    """DETAILS_MAX is 50,000 characters; percent-encoded Hangul is 9 bytes each, so the
    form's url-encoded post passes the 256 KiB body limit at ~29,000 characters."""
    form = await open_form(client)
    page = await client.post("/report", data={**form, **FIELDS, "details": "가" * 30_000, "step": "check"})
    assert page.status_code == 200 and is_page(page), (page.status_code, page.text[:200])


async def test_a_long_korean_drill_report_reaches_the_check_page(client, clock) -> None:
    form = await open_form(client)
    page = await client.post(
        "/drill", data={**form, **FIELDS, "drill_code": "ABCD-EFGH-JKMN", "details": "가" * 30_000, "step": "check"}
    )
    assert page.status_code != 413 and is_page(page), (page.status_code, page.text[:200])


async def test_editing_after_sending_with_the_same_key_gets_a_page_not_json(client, sessionmaker, clock) -> None:
    """Back button after the receipt, change one word, send again: same idempotency key,
    different report."""
    fields = await checked(client)
    clock.now += timedelta(seconds=30)
    sent = await client.post("/report", data=fields)
    assert sent.status_code == 200
    changed = await client.post("/report", data={**fields, "summary": FIELDS["summary"] + " (corrected)"})
    assert is_page(changed), (changed.status_code, changed.headers.get("content-type"), changed.text[:300])


async def test_a_resent_form_with_a_file_tells_the_reporter_the_file_was_not_attached(client, sessionmaker, clock) -> None:
    """The upload died after the report was committed (Tor circuit); the browser re-posts
    the same form: the replay shows the receipt but must say what became of the file."""
    fields = await checked(client)
    clock.now += timedelta(seconds=30)
    file = ("evidence.txt", b"some evidence\n" * 50, "text/plain")
    first = await client.post("/report", files=multipart(fields, file))
    assert first.status_code == 200 and "첨부" in first.text
    again = await client.post("/report", files=multipart(fields, file))
    assert again.status_code == 200
    assert re.findall(r'receipt-group">(\d+)<', again.text) == re.findall(r'receipt-group">(\d+)<', first.text)
    # Something about the file must be said on the replay (attached, or attach it again).
    file_notice = re.search(r'class="(notice|error-summary)"', again.text)
    assert file_notice, "replayed receipt is silent about the file"


async def test_a_chunked_send_over_the_limit_never_loses_the_receipt(client, sessionmaker, clock, app) -> None:
    """No Content-Length (chunked): the body limit trips inside `attach`, after the report
    was committed; the response must still carry the receipt."""
    limit = app.state.context.settings.intake.attachments.max_bytes
    fields = await checked(client)
    fields["details"] = "x" * 40_000  # > MULTIPART_OVERHEAD_BYTES of text before the file
    clock.now += timedelta(seconds=30)
    before = await cases(sessionmaker)
    boundary = "BoUnDaRy"
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="e.txt"\r\nContent-Type: text/plain\r\n\r\n'

    async def body():
        yield head.encode()
        chunk = b"a" * 65536
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post("/report", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    stored = await cases(sessionmaker) - before
    receipt_shown = bool(re.findall(r'receipt-group">(\d+)<', response.text))
    assert stored == 0 or receipt_shown, (stored, response.status_code, response.text[:200])


GARBAGE = [
    ("application/x-www-form-urlencoded", b"summary=%FF%FE&details=\xff\xfe\x00&category=bribery&step=send&ticket=%00"),
    ("application/x-www-form-urlencoded", b"&&&===&step=send&idempotency_key=" + b"\x01" * 20),
    ("application/x-www-form-urlencoded", b"idempotency_key=" + b"A" * 200 + b"&step=send"),
    ("multipart/form-data", b"garbage"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"step\"\r\n\r\nsend\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"),
    ("multipart/form-data; boundary=x", b"--x\r\n\r\n\r\n--x--\r\n"),
    ("multipart/form-data; boundary=" + "b" * 300, b"x"),
    ("Multipart/Form-Data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"step\"\r\n\r\nsend\r\n--x--\r\n"),
    ("text/plain", b"\xff\xfe"),
    ("application/json", b'{"step": "send"}'),
    ("", b""),
]


@pytest.mark.parametrize("path", ["/report", "/internal/report", "/status", "/status/attachments", "/drill", "/report?lang=en"])
@pytest.mark.parametrize("case", range(len(GARBAGE)))
async def test_garbage_posts_get_a_page_never_a_500(client, clock, path, case) -> None:
    content_type, body = GARBAGE[case]
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:200])
    assert is_page(response), (response.status_code, response.headers.get("content-type"), response.text[:200])


async def test_identity_answer_garbage(client, clock) -> None:
    # A real report, a session, then odd identity answers.
    fields = await checked(client)
    clock.now += timedelta(seconds=30)
    sent = await client.post("/report", data=fields)
    receipt = "".join(re.findall(r'receipt-group">(\d+)<', sent.text))
    opened = await client.post("/status", data={"step": "open", "receipt": receipt})
    assert opened.status_code == 200
    session = hidden(opened.text, "session")
    for extra in ({"answer": "maybe", "request": "not-a-uuid"}, {"answer": "consent", "request": "00000000-0000-0000-0000-000000000000"}, {"step": "reply", "body": "\x00" * 10}, {"step": "reply", "body": "x" * 25_000}):
        r = await client.post("/status", data={"session": session, "step": "identity", **extra})
        assert r.status_code < 500 and is_page(r), (extra, r.status_code, r.text[:200])


@pytest.mark.parametrize("url", ["/nope", "/report?lang=" + "x" * 20, "/static/../app/settings.py", "/static/%2e%2e%2fsettings.py", "/static/site.css"])
async def test_every_reporter_facing_response_carries_the_page_headers(client, url) -> None:
    response = await client.get(url)
    assert response.headers.get("cache-control") == "no-store", (url, response.status_code, dict(response.headers))
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), url
    assert response.headers.get("referrer-policy") == "no-referrer", url
    assert "etag" not in response.headers and "set-cookie" not in response.headers


async def test_413_on_a_page_path_carries_the_page_headers(client) -> None:
    """The body limit answers before any page code runs (a problem document), yet with the
    pages' headers: not cached, not framed, no referrer."""
    response = await client.post("/status", content=b"a=" + b"b" * 300_000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.headers.get("cache-control") == "no-store" and "frame-ancestors 'none'" in response.headers["content-security-policy"]
