"""Reporter sessions and idempotent-retry data, sealed under keys the server derives from
its secret, so that nothing about a reporter's visits is stored.

A reporter session is a stateless token: the case id, the receipt's master secret and an
expiry, AES-256-GCM-sealed under a key derived from `CLEANWINDOW_SECRET_KEY`. The database
keeps no session rows, so it cannot tell when, or whether, a reporter came back. The
token lives only in the reporter's client; it cannot be revoked, so it is short-lived.

An `Idempotency-Key` is stored only as an HMAC under the server's secret, and the
receipt to replay is sealed under a key derived from the idempotency key itself: without
the client's key, the stored replay data opens to nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.domain.crypto import hkdf
from app.domain.errors import InvalidInput, NotAuthenticated

SESSION_PREFIX = "cwr_"
_SESSION = struct.Struct(">16s32sQ")  # case id, master secret, expiry (Unix s)
MIN_IDEMPOTENCY_KEY = 16
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class ReporterSession:
    case_id: uuid.UUID
    master: bytes
    expires_at: datetime


class ReporterSessionCodec:
    def __init__(self, secret_key: bytes):
        self._aead = AESGCM(hkdf(secret_key, b"reporter-session"))

    def issue(self, case_id: uuid.UUID, master: bytes, expires_at: datetime) -> str:
        nonce = os.urandom(12)
        payload = _SESSION.pack(case_id.bytes, master, int(expires_at.timestamp()))
        sealed = nonce + self._aead.encrypt(nonce, payload, SESSION_PREFIX.encode())
        return SESSION_PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, token: str | None, now: datetime) -> ReporterSession:
        if not token:
            raise NotAuthenticated("This needs the token from POST /api/v1/reporter/sessions.")
        invalid = NotAuthenticated("The session is invalid or has expired; enter the receipt again.")
        if not token.startswith(SESSION_PREFIX):
            raise invalid
        body = token[len(SESSION_PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = self._aead.decrypt(sealed[:12], sealed[12:], SESSION_PREFIX.encode())
            case_bytes, master, expires = _SESSION.unpack(payload)
        except (binascii.Error, ValueError, InvalidTag, struct.error):
            raise invalid from None
        if now.timestamp() >= expires:
            raise invalid
        return ReporterSession(uuid.UUID(bytes=case_bytes), master, datetime.fromtimestamp(expires, UTC))


class InvalidIdempotencyKey(InvalidInput):
    slug = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


def check_idempotency_key(key: str) -> str:
    if not (MIN_IDEMPOTENCY_KEY <= len(key) <= MAX_IDEMPOTENCY_KEY) or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be {MIN_IDEMPOTENCY_KEY} to {MAX_IDEMPOTENCY_KEY} printable "
            "ASCII characters; use a random UUID."
        )
    return key


class IdempotencySealer:
    def __init__(self, secret_key: bytes):
        self._secret_key = secret_key

    def digest(self, key: str) -> bytes:
        return hmac.new(self._secret_key, b"cleanwindow/v1/idempotency|" + key.encode(), hashlib.sha256).digest()

    def _aead(self, key: str) -> AESGCM:
        return AESGCM(hkdf(key.encode(), b"idempotency-replay", salt=self._secret_key))

    def seal_receipt(self, key: str, case_id: uuid.UUID, receipt: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead(key).encrypt(nonce, receipt.encode(), case_id.bytes)

    def open_receipt(self, key: str, case_id: uuid.UUID, sealed: bytes) -> str | None:
        try:
            return self._aead(key).decrypt(sealed[:12], sealed[12:], case_id.bytes).decode()
        except (InvalidTag, ValueError):
            return None
