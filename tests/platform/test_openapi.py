"""`/openapi.json` documents the answers the framework around every route gives, as the
problem documents they are. (tests/test_openapi_fuzz.py checks real answers against it.)"""

from __future__ import annotations

import httpx
import pytest

from app.domain.staff import Role

PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


async def test_every_error_answer_is_documented_as_a_problem_document(openapi: dict) -> None:
    for name, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert response["content"] == PROBLEM_CONTENT, f"{name} {status}"
    assert "ProblemDetails" in openapi["components"]["schemas"]
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


async def test_every_operation_documents_what_the_framework_can_answer(openapi: dict) -> None:
    for name, operation in operations(openapi):
        expected = {"400", "413", "500"}  # any request's Content-Length; the last resort
        if "requestBody" in operation or operation.get("parameters"):
            expected.add("422")
        if operation.get("security"):
            expected.add("401")
        if not name.endswith(("/healthz", "/metrics")):
            expected.add("503")  # everything else reaches the database
        assert expected <= operation["responses"].keys(), name


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/users"), ("PUT", "/api/v1/users/me/public-key"), ("POST", "/api/v1/reports")],
)
async def test_malformed_json_is_answered_as_documented(
    client: httpx.AsyncClient, openapi: dict, staff, method: str, path: str
) -> None:
    headers = {**await staff.headers_for(Role.ADMIN), "content-type": "application/json"}
    response = await client.request(method, path, content=b'{"public_key": ', headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert openapi["paths"][path][method.lower()]["responses"]["400"]["content"] == PROBLEM_CONTENT
