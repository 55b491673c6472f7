"""Every error the service emits is an RFC 9457 problem, with nothing internal in it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.api.deps import SessionDep
from app.domain.staff import Role
from app.staff.models import StaffUser

PROBLEM = "application/problem+json"
MARKER = "MARKER-7f3a-should-never-be-echoed"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/path"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"


async def test_wrong_method_is_a_405_problem_naming_the_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    body = assert_problem(response, 405)
    assert "DELETE" in body["detail"]
    assert response.headers["allow"] == "GET"


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient, staff) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    response = await client.post(
        "/api/v1/users", content=b'{"username": "x", ', headers={**headers, "content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert body["type"] == "urn:cleanwindow:problem:malformed-json"


async def test_validation_errors_name_the_field_and_never_echo_the_input(
    client: httpx.AsyncClient, staff
) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    response = await client.post(
        "/api/v1/users",
        json={"username": "valid-name", "role": MARKER, "password": "x" * 20},
        headers=headers,
    )
    body = assert_problem(response, 422)
    assert body["type"] == "urn:cleanwindow:problem:validation-error"
    assert [error["location"] for error in body["errors"]] == ["body.role"]
    assert MARKER not in response.text


async def test_unexpected_fields_are_refused(client: httpx.AsyncClient, staff) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    response = await client.post(
        "/api/v1/users",
        json={"username": "valid-name", "role": "triage", "password": "x" * 20, "is_admin": True},
        headers=headers,
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["location"] == "body.is_admin"


async def test_declared_oversized_body_is_a_413_problem_before_it_is_read(
    client: httpx.AsyncClient, settings
) -> None:
    too_big = b"{" + b" " * settings.http.max_body_bytes + b"}"
    response = await client.post(
        "/api/v1/users", content=too_big, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413)
    assert body["limit"] == settings.http.max_body_bytes


async def test_streamed_oversized_body_without_length_is_a_413_problem(
    client: httpx.AsyncClient, settings, staff
) -> None:
    headers = await staff.headers_for(Role.ADMIN)

    async def chunks():
        for _ in range(settings.http.max_body_bytes // 4096 + 2):
            yield b" " * 4096

    response = await client.post(
        "/api/v1/users", content=chunks(), headers={**headers, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    body = assert_problem(response, 413)
    assert body["limit"] == settings.http.max_body_bytes


async def test_a_non_numeric_content_length_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", content=b"x", headers={"content-length": "lots"}
    )
    assert_problem(response, 400)


async def test_an_unexpected_exception_is_a_bare_500_and_nothing_half_written(
    app, client: httpx.AsyncClient, sessionmaker
) -> None:
    @app.post("/api/v1/users/_explode")
    async def explode(session: SessionDep) -> None:
        session.add(StaffUser(username="half-written", role="admin", password_hash="x"))
        await session.flush()
        raise RuntimeError(f"internal detail {MARKER}")

    response = await client.post("/api/v1/users/_explode")
    body = assert_problem(response, 500)
    assert MARKER not in response.text
    assert "RuntimeError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]

    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(StaffUser).where(StaffUser.username == "half-written")
        )
    assert count == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/users/me"), ("GET", "/api/v1/users"), ("DELETE", "/api/v1/auth/token")],
)
async def test_missing_credentials_are_a_401_problem(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    body = assert_problem(response, 401)
    assert body["type"] == "urn:cleanwindow:problem:not-authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_openapi_documents_problem_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    token_responses = spec["paths"]["/api/v1/auth/token"]["post"]["responses"]
    assert {"401", "429"} <= token_responses.keys()
    assert "application/problem+json" in token_responses["429"]["content"]


async def test_parsing_errors_do_not_quote_what_was_sent(client: httpx.AsyncClient, staff) -> None:
    headers = await staff.headers_for(Role.ADMIN)
    response = await client.post("/api/v1/users/not-a-uuid-zzz/deactivate", headers=headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["location"] == "path.user_id"
    assert "zzz" not in response.text
    assert "'n'" not in response.text


async def test_a_failed_commit_is_a_500_not_a_success(
    settings, fresh_database_url: str, password_hashing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit happens before the response is sent: if it fails, the client hears it."""
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    from app.main import create_app

    engine = create_async_engine(fresh_database_url)
    async with async_sessionmaker(engine)() as session:
        session.add(StaffUser(username="commit-admin", role="admin", password_hash=password_hashing.hash("x" * 20)))
        await session.commit()
    app = create_app(settings, sessionmaker=async_sessionmaker(engine, expire_on_commit=False))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        token = (await client.post("/api/v1/auth/token", data={"username": "commit-admin", "password": "x" * 20})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        async def failing_commit(self) -> None:
            raise ConnectionResetError("the database went away at commit")

        monkeypatch.setattr(AsyncSession, "commit", failing_commit)
        response = await client.post(
            "/api/v1/users", headers=headers,
            json={"username": "never-committed", "role": "triage", "password": "a long passphrase"},
        )
    monkeypatch.undo()
    assert_problem(response, 500)
    async with async_sessionmaker(engine)() as session:
        assert await session.scalar(select(StaffUser).where(StaffUser.username == "never-committed")) is None
    await engine.dispose()
