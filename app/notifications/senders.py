"""Sending one delivery: an e-mail over SMTP, or a signed webhook call.

Both raise `DeliveryFailed` with a short reason (never the payload) on anything that
should be retried.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

import aiosmtplib
import httpx
from standardwebhooks import Webhook

from app.settings import Settings, WebhookEndpoint


class DeliveryFailed(Exception):
    """A try that failed; the reason goes to `last_error` (500 characters at most)."""


def webhook_body(kind: str, sent_at: datetime, data: dict) -> str:
    # The Standard Webhooks payload shape: type, timestamp, data.
    return json.dumps(
        {"type": kind, "timestamp": sent_at.isoformat().replace("+00:00", "Z"), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )


def signed_headers(endpoint: WebhookEndpoint, delivery_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    signature = Webhook(endpoint.secret.get_secret_value()).sign(delivery_id, sent_at, body)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def call_webhook(
    endpoint: WebhookEndpoint, delivery_id: str, kind: str, data: dict, sent_at: datetime, timeout: float
) -> None:
    body = webhook_body(kind, sent_at, data)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.post(
                endpoint.url, content=body, headers=signed_headers(endpoint, delivery_id, sent_at, body)
            )
    except httpx.HTTPError as error:
        raise DeliveryFailed(f"{type(error).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}")


def build_mail(settings: Settings, delivery_id: str, to: str, subject: str, body: str, sent_at: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.notify_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at)
    # The delivery's id: a mail sent twice (a crash between the server's "250" and our
    # commit) carries the same Message-ID, which mail systems use to drop duplicates.
    message["Message-ID"] = f"<{delivery_id}@{settings.sender_domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


async def send_mail(settings: Settings, message: EmailMessage) -> None:
    assert settings.smtp_url is not None
    url = urlsplit(settings.smtp_url.get_secret_value())
    implicit_tls = url.scheme == "smtps"
    logs_in = url.username is not None
    try:
        refused, _ = await aiosmtplib.send(
            message,
            hostname=url.hostname,
            port=url.port or (465 if implicit_tls else 25),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            use_tls=implicit_tls,
            # STARTTLS whenever the server offers it; required before a login, so that a
            # network that strips the offer cannot read the password.
            start_tls=False if implicit_tls else (True if logs_in else None),
            timeout=settings.notify.send_timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        code = getattr(error, "code", None)
        raise DeliveryFailed(f"{type(error).__name__}" + (f" {code}" if code else "")) from None
    if refused:
        # One recipient per mail: a refusal of it is a failed try.
        codes = sorted({str(answer[0]) for answer in refused.values()})
        raise DeliveryFailed(f"recipient refused ({', '.join(codes)})")
