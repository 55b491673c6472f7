"""RFC 9457 problem details for every error the service emits.

One place turns domain errors, HTTP errors (unknown path, wrong method, oversized body)
and validation errors into `application/problem+json`. Validation errors list where and
what, never the rejected input: on intake paths that input is a report.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain.errors import PROBLEM_TYPE_BASE, DatabaseUnavailable, DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """An RFC 9457 problem document; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "invalid-input"])
    title: str
    status: int
    detail: str


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_json(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    body = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_response(error: DomainError, *, request_id: str | None = None) -> ProblemResponse:
    """`request_id` only where no handler of the request's own will add it (the last-resort
    middleware's answers)."""
    extensions = error.extensions if request_id is None else {**error.extensions, "request_id": request_id}
    return problem_json(
        error.status,
        error.detail,
        title=error.title,
        type=error.type,
        headers=error.headers,
        **extensions,
    )


PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem bodies for these statuses: the
    route's own; app/platform/openapi.py adds those every route of its kind can answer.
    (Not `model=`: FastAPI would file the schema under `application/json`.)"""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA_REF}},
        }
        for status in statuses
    }


_DEFAULT_DETAILS = {
    404: "Nothing exists at this path.",
    405: "This path does not accept that method.",
    413: "The request body is larger than this endpoint accepts.",
}


async def _handle_domain_error(_: Request, error: DomainError) -> ProblemResponse:
    return problem_response(error)


async def _handle_http_error(request: Request, error: StarletteHTTPException) -> ProblemResponse:
    phrase = HTTPStatus(error.status_code).phrase
    detail = error.detail if isinstance(error.detail, str) and error.detail != phrase else None
    if error.status_code == 405:
        detail = f"{request.url.path} does not accept {request.method}."
    detail = detail or _DEFAULT_DETAILS.get(error.status_code, phrase)
    return problem_json(
        error.status_code,
        detail,
        headers=getattr(error, "headers", None),
        **getattr(error, "extensions", {}),
    )


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(error: dict[str, Any]) -> str:
    # Parsing errors append what they found ("found 'n' at 0"): keep only the expectation.
    message = error["msg"]
    if error["type"].endswith("_parsing") or error["type"].endswith("_type"):
        message = message.split(",")[0]
    return message


async def _handle_validation_error(_: Request, error: RequestValidationError) -> ProblemResponse:
    errors = error.errors()
    if any(item.get("type") == "json_invalid" for item in errors):
        return problem_json(
            400,
            "The request body is not valid JSON.",
            title="Malformed JSON",
            type=PROBLEM_TYPE_BASE + "malformed-json",
        )
    return problem_json(
        422,
        "; ".join(f"{_location(item['loc'])}: {_message(item)}" for item in errors),
        title="Invalid request",
        type=PROBLEM_TYPE_BASE + "validation-error",
        errors=[
            {"location": _location(item["loc"]), "message": _message(item), "code": item["type"]}
            for item in errors
        ],
    )


# character_not_in_repertoire, untranslatable_character: text PostgreSQL cannot store
# (a NUL byte, above all), wherever in a request it came from.
_UNSTORABLE_TEXT_SQLSTATES = {"22021", "22P05"}


async def _handle_database_error(request: Request, error: DBAPIError) -> ProblemResponse:
    if getattr(error.orig, "sqlstate", None) in _UNSTORABLE_TEXT_SQLSTATES:
        return problem_json(
            422,
            "The request contains characters that cannot be stored (such as a NUL byte).",
            title="Invalid input",
            type=PROBLEM_TYPE_BASE + "invalid-input",
        )
    raise error  # the last-resort 500, with a request id and the error in the log


# Connection exceptions, insufficient resources (too many connections), the server
# shutting down or starting up, and the database gone (dropped, or not yet created).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "3D000")
_DRIVER_MODULES = ("asyncpg.",)
DATABASE_RETRY_AFTER_SECONDS = 10


def _raised_by_the_driver(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def _means_unavailable(error: BaseException) -> bool:
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        return (
            error.connection_invalidated
            or isinstance(error, (OperationalError, InterfaceError))
            or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
        )
    # asyncpg lets a refused or timed-out connection through as a bare OSError.
    return isinstance(error, OSError) and _raised_by_the_driver(error)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether an error (or one it arose from, such as a rollback failing after a lost
    connection) means the database could not be reached or had no connection to spare:
    a 503 to retry, not a 500 to investigate."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _means_unavailable(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def database_unavailable_response(request_id: str | None) -> ProblemResponse:
    error = DatabaseUnavailable(
        "The service cannot reach its database right now. Try again after Retry-After seconds.",
        retry_after_seconds=DATABASE_RETRY_AFTER_SECONDS,
    )
    return problem_response(error, request_id=request_id)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle_domain_error)
    app.add_exception_handler(DBAPIError, _handle_database_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
