"""Pure ASGI middleware: request context and metrics, body size limits, last-resort 500.

Pure ASGI rather than `BaseHTTPMiddleware` so that request bodies stream through
untouched (uploads are never held whole in memory here).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from http import HTTPStatus

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.logging import reporter_facing_var, request_id_var
from app.platform.metrics import HTTP_LATENCY, HTTP_REQUESTS, method_label
from app.platform.privacy import is_reporter_facing
from app.platform.problems import PROBLEM_MEDIA_TYPE, database_unavailable_response, is_database_unavailable

logger = logging.getLogger("cleanwindow.http")


async def send_problem(send: Send, status: int, detail: str, extra: dict | None = None) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
            **(extra or {}),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ResponseTracker:
    """Wraps `send` to remember whether the response has started: after that, an error
    can no longer be turned into a problem response."""

    def __init__(self, send: Send):
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class RequestContextMiddleware:
    """Gives each request an id (echoed as `X-Request-ID`), marks reporter-facing requests
    for the log formatter, and records metrics and an access line for staff paths only.
    The id is always our own: a client-chosen id could be used to tag a reporter."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        reporter_facing = is_reporter_facing(scope["path"])
        request_id_var.set(request_id)
        reporter_facing_var.set(reporter_facing)
        status_holder = {"status": 500}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            status = status_holder["status"]
            # Reporter-facing requests are neither counted nor logged: a counter polled
            # every second would time a submission as precisely as an access log.
            if not reporter_facing:
                method = method_label(scope["method"])
                HTTP_REQUESTS.labels(method, template, str(status)).inc()
                HTTP_LATENCY.labels(method, template).observe(elapsed)
                logger.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )
            # The context variables are deliberately not reset: uvicorn runs each request
            # in a task of its own, and what it logs after the app returns (an incomplete
            # response, say) must still be treated as reporter-facing.


def too_large_detail(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside `receive`; an HTTPException so FastAPI's body parsing passes it
    through unchanged and the problem handler renders a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))
        self.extensions = {"limit": limit}


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_problem(send, 400, "The Content-Length header is not a number.")
                return
            if int(declared) > limit:
                await send_problem(send, 413, too_large_detail(limit), {"limit": limit})
                return

        received = 0
        response = ResponseTracker(send)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, response)
        except BodyTooLarge:
            if response.started:
                raise
            await send_problem(send, 413, too_large_detail(limit), {"limit": limit})


class UnexpectedErrorMiddleware:
    """The last resort: an exception nobody handled becomes a bare 500 problem with the
    request id to quote, and a log entry; never a stack trace in the response. A database
    that cannot be reached (or an exhausted pool) is a 503 with `Retry-After` instead."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = ResponseTracker(send)
        try:
            await self.app(scope, receive, response)
        except Exception as error:
            if is_database_unavailable(error):
                logger.warning("database unavailable", exc_info=True)
                if not response.started:
                    await database_unavailable_response(request_id_var.get())(scope, receive, send)
                return
            logger.exception("unhandled error")
            if not response.started:
                await send_problem(
                    send,
                    500,
                    "The service failed to handle this request. Nothing about it was kept "
                    "half-done; you may try again.",
                    {"request_id": request_id_var.get()},
                )
