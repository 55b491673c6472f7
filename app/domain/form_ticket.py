"""Signed form tickets: abuse control for reports sent from a page with JavaScript off.

A page that holds a report form carries a ticket minted when it was served. Nothing is
stored when it is minted; any replica verifies it (a MAC under the server secret), and
intake makes it single-use by storing its digest where a proof-of-work challenge's goes
(`cases.pow_digest`, unique). A ticket submitted sooner than `min_seconds` after the page
was served (a script, not a person) or later than `max_seconds` is refused. It carries no
address and nothing of the browser: every reader of the page gets an equally anonymous one.

    ticket = base64url( version(1) || issued_at(8, big-endian Unix s) || random(16) || mac(16) )
    mac    = first 16 bytes of HMAC-SHA256(HKDF(secret, "form-ticket"), version || issued_at || random)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.crypto import b64url_decode, b64url_encode, hkdf
from app.domain.errors import InvalidInput

VERSION = 1
_BODY = struct.Struct(">BQ16s")
MAC_BYTES = 16
TICKET_BYTES = _BODY.size + MAC_BYTES


class FormTicketInvalid(InvalidInput):
    slug = "form-ticket-invalid"
    title = "The form is not one this service served"


class FormTicketTooFresh(InvalidInput):
    slug = "form-ticket-too-fresh"
    title = "The form was sent too quickly"


class FormTicketExpired(InvalidInput):
    slug = "form-ticket-expired"
    title = "The form is too old"


def _key(secret: bytes) -> bytes:
    return hkdf(secret, b"form-ticket")


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(_key(secret), body, hashlib.sha256).digest()[:MAC_BYTES]


def issue(secret: bytes, now: datetime) -> str:
    body = _BODY.pack(VERSION, int(now.timestamp()), os.urandom(16))
    return b64url_encode(body + _mac(secret, body))


@dataclass(frozen=True)
class CheckedTicket:
    issued_at: datetime
    digest: bytes  # what makes it single-use: stored like a used challenge's digest


def verify(secret: bytes, ticket: str, now: datetime, *, min_seconds: int, max_seconds: int) -> CheckedTicket:
    try:
        raw = b64url_decode(ticket)
    except ValueError:
        raw = b""
    if len(raw) != TICKET_BYTES or not hmac.compare_digest(raw[_BODY.size :], _mac(secret, raw[: _BODY.size])):
        raise FormTicketInvalid("This form was not served by this service; open the page again.")
    version, issued, _ = _BODY.unpack(raw[: _BODY.size])
    if version != VERSION:
        raise FormTicketInvalid("This form is from an older version of the page; open it again.")
    age = now.timestamp() - issued
    if age < min_seconds:
        raise FormTicketTooFresh(f"The form was sent {max(age, 0):.0f} s after it was opened; wait a moment and send it again.")
    if age > max_seconds:
        raise FormTicketExpired("The form was opened too long ago; open the page again (what you wrote is kept).")
    digest = hashlib.sha256(b"cleanwindow/v1/form-ticket|" + raw).digest()
    return CheckedTicket(datetime.fromtimestamp(issued, UTC), digest)
