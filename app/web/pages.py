"""Rendering a page, and the headers every reporter-facing page and file carries.

No third-party asset, nothing cached, no referrer, no framing, no ETag and no cookie:
a reporter's browser keeps as little as possible, and tells nobody where it has been."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse, Response

from app.domain.intake import Language
from app.web.i18n import environment

# Only what the pages use, from this origin; `default-src 'none'` refuses everything else.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        # One self-hosted script, which only adds a Print button to the receipt page.
        "script-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


class PageHeaders:
    """Every answer on a page path (not the API, not a staff path) carries the pages'
    headers, whoever wrote it: a 404 for a mistyped address, a 413 from the body limit, a
    problem document from the framework. None may be cached, framed or sent with a referrer."""

    def __init__(self, app, is_page_path) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.is_page_path = is_page_path

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or not self.is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() not in (b"etag", b"last-modified")]
                headers += [
                    (name.lower().encode(), value.encode())
                    for name, value in PAGE_HEADERS.items()
                    if name.lower().encode() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def render(template: str, language: Language, path: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    other = Language.EN if language is Language.KO else Language.KO
    html = environment(language).get_template(template).render(
        language=language.value,
        # A plain link to the same page in the other language (no cookie remembers it).
        other_language=other.value,
        other_language_url=f"{path}?lang={other.value}",
        lang_query="" if language is Language.KO else f"?lang={language.value}",
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def static_file(content: bytes, media_type: str) -> Response:
    return Response(content, media_type=media_type, headers=PAGE_HEADERS)
