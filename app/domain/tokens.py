"""Bearer tokens: random, shown once, stored only as a keyed digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets

STAFF_TOKEN_PREFIX = "cws_"
TOKEN_BYTES = 32


def new_staff_token() -> str:
    # The prefix lets secret scanners and people recognise a leaked Clean Window token.
    return STAFF_TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(secret_key: bytes, token: str) -> bytes:
    """HMAC, not a plain hash: without the server's secret a dump of the digests cannot
    even be used to test a guessed token."""
    return hmac.new(secret_key, token.encode(), hashlib.sha256).digest()
