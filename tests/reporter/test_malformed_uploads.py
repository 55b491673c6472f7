"""Upload bodies whose multipart framing is broken before the parser starts: each is a
422 `malformed-multipart` problem that writes nothing, never a 500."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.cases.models import AttachmentChunk, CaseAttachment
from tests.intake.helpers import reporter_headers, submit_ok


def multipart_body(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "hello there\r\n"
        f"--{boundary}--\r\n"
    ).encode()


@pytest.mark.parametrize(
    "boundary",
    [
        "b" * 257,  # one past python-multipart's limit, which its parser refuses when built
        "b" * 4000,
        "",  # RFC 2046: one to seventy characters
    ],
    ids=["257-bytes", "4000-bytes", "empty"],
)
async def test_an_unusable_boundary_is_a_malformed_multipart_problem(
    client: httpx.AsyncClient, db_connection: AsyncConnection, boundary: str
) -> None:
    headers = await reporter_headers(client, await submit_ok(client))
    response = await client.post(
        "/api/v1/reporter/attachments",
        content=multipart_body(boundary or "x"),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:cleanwindow:problem:malformed-multipart"
    assert "b" * 50 not in response.text
    for model in (CaseAttachment, AttachmentChunk):
        assert await db_connection.scalar(select(func.count()).select_from(model)) == 0
