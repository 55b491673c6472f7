"""The OpenAPI document, with every problem an operation can answer.

Routes list the problems of their own rules (`problem_responses(403, 404, 409)`); the
answers that come from the framework around them are added here, in one place, from what
each route is made of, so that a new route cannot forget them:

- 400: a body that does not parse (JSON or form) or a `Content-Length` that is no number,
- 413: a body over the size limit (the middleware counts every body),
- 422: parameters or a body that fail validation,
- 401: a route behind a bearer scheme,
- 503: a route that uses the database (unreachable, or the pool exhausted),
- 500: anything, as the last resort.

Every 4xx and 5xx is `application/problem+json` with the `ProblemDetails` schema;
FastAPI's own 422 (`HTTPValidationError` as `application/json`) is never what the
service answers, so it is replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.platform.problems import PROBLEM_MEDIA_TYPE, PROBLEM_SCHEMA_REF, ProblemDetails

_COMMON = {
    400: "`Content-Length` is not a number.",
    401: "No valid bearer token (`not-authenticated`).",
    413: "The body is larger than this endpoint accepts.",
    422: "Parameters or body fail validation (`validation-error`, with `errors[]`), "
    "or a rule refused a value.",
    500: "An unexpected failure; only a `request_id` to quote. Nothing was half-written.",
    503: "The database is unreachable or busy; retry later.",
}
_BODY_DOES_NOT_PARSE = (
    "The body does not parse (`malformed-json` for JSON), or `Content-Length` is not a number."
)
# FastAPI's default 422 schemas, unused once that response is a problem.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI, *, database_dependency: Callable[..., Any]) -> None:
    """Make `app.openapi()` (and `/openapi.json`) document the common problems; a route
    that depends on `database_dependency` (the request's session) may answer 503."""
    generate = app.openapi  # caches its document, and makes a new one when routes change
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not completed or completed[0] is not schema:
            document_common_problems(schema, app.routes, database_dependency)
            completed[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_common_problems(
    schema: dict[str, Any], routes: list[Any], database_dependency: Callable[..., Any]
) -> None:
    for path, route in _api_routes(routes):
        path_item = schema["paths"].get(path, {})
        for method in route.methods:
            operation = path_item.get(method.lower())
            if operation is not None:
                _complete(operation, route, database_dependency)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ProblemDetails", ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    if not _mentions(schema["paths"], _FASTAPI_VALIDATION_SCHEMAS):
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            components.pop(name, None)


def _complete(operation: dict[str, Any], route: APIRoute, database_dependency: Callable[..., Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = {400, 413, 500}  # the body limit reads every request's Content-Length
    if "requestBody" in operation:
        statuses.add(422)
    if operation.get("parameters"):
        statuses.add(422)
    if operation.get("security"):
        statuses.add(401)
    if database_dependency in _calls(route.dependant):
        statuses.add(503)
    for status in statuses:
        responses.setdefault(str(status), {"description": _COMMON[status]})
    if "requestBody" in operation:
        responses["400"]["description"] = _BODY_DOES_NOT_PARSE
    for status, response in responses.items():
        if status[0] in "45":
            # Whatever FastAPI put there (its 422, a `model=` under application/json):
            # the service answers every error as a problem document.
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA_REF}}
            if response.get("description") in (None, "", "Validation Error"):
                response["description"] = _COMMON.get(int(status), "A problem.")
    operation["responses"] = dict(sorted(responses.items()))


def _api_routes(routes: list[Any]) -> Iterator[tuple[str, APIRoute]]:
    """Each API route with its full path. Newer FastAPI keeps included routers whole
    (their routes carry the path without the prefix) and resolves them lazily."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:
        for route in routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                yield route.path_format, route
        return
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema and context.path_format:
            yield context.path_format, route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _mentions(tree: Any, names: tuple[str, ...]) -> bool:
    if isinstance(tree, dict):
        return any(_mentions(value, names) for value in tree.values())
    if isinstance(tree, list):
        return any(_mentions(value, names) for value in tree)
    return isinstance(tree, str) and tree.rsplit("/", 1)[-1] in names
