"""Proof of work for anonymous submissions, with nothing stored when a challenge is issued.

A challenge is 42 bytes: version, 16 random bytes, expiry (Unix seconds), difficulty, and
an HMAC under the server's secret over all of that. So any replica can check a challenge
it did not issue, a client cannot lower the difficulty or extend the expiry, and a flood
of challenge requests costs no storage. Single use is enforced where the report is
stored: the challenge's SHA-256 goes into a unique column of the case row.

A solution is a decimal string `nonce` such that SHA-256(challenge || nonce) starts with
at least `difficulty` zero bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.errors import Conflict, InvalidInput

VERSION = 1
_BODY = struct.Struct(">B16sQB")  # version, random, expires (Unix s), difficulty
MAC_BYTES = 16
CHALLENGE_BYTES = _BODY.size + MAC_BYTES
MAX_NONCE_DIGITS = 32
MAX_DIFFICULTY = 40


class ChallengeInvalid(InvalidInput):
    slug = "challenge-invalid"
    title = "Invalid proof-of-work challenge"


class ChallengeExpired(InvalidInput):
    slug = "challenge-expired"
    title = "Proof-of-work challenge expired"


class ChallengeReused(Conflict):
    slug = "challenge-reused"
    title = "Proof-of-work challenge already used"


class InsufficientWork(InvalidInput):
    slug = "proof-of-work-insufficient"
    title = "Proof of work does not meet the difficulty"


@dataclass(frozen=True)
class IssuedChallenge:
    challenge: str  # base64
    difficulty: int
    expires_at: datetime


def _mac(secret_key: bytes, body: bytes) -> bytes:
    return hmac.new(secret_key, b"cleanwindow/v1/pow|" + body, hashlib.sha256).digest()[:MAC_BYTES]


def issue_challenge(secret_key: bytes, *, difficulty: int, expires_at: datetime) -> IssuedChallenge:
    body = _BODY.pack(VERSION, os.urandom(16), int(expires_at.timestamp()), difficulty)
    raw = body + _mac(secret_key, body)
    return IssuedChallenge(
        challenge=base64.b64encode(raw).decode(),
        difficulty=difficulty,
        expires_at=datetime.fromtimestamp(int(expires_at.timestamp()), UTC),
    )


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def solve(challenge: str, difficulty: int) -> str:
    """The reference solver (tests, benchmark, CLI clients); a browser does the same."""
    raw = base64.b64decode(challenge)
    nonce = 0
    while leading_zero_bits(hashlib.sha256(raw + str(nonce).encode()).digest()) < difficulty:
        nonce += 1
    return str(nonce)


def verify_solution(secret_key: bytes, challenge: str, nonce: str, now: datetime) -> bytes:
    """Check a solution; returns the challenge's digest, which the caller stores to make
    the challenge single-use. Raises a precise error for each way it can be wrong."""
    try:
        raw = base64.b64decode(challenge, validate=True)
    except (binascii.Error, ValueError):
        raise ChallengeInvalid("The challenge is not base64.") from None
    if len(raw) != CHALLENGE_BYTES:
        raise ChallengeInvalid("The challenge was not issued by this service.")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if not hmac.compare_digest(mac, _mac(secret_key, body)):
        raise ChallengeInvalid("The challenge was not issued by this service.")
    version, _, expires, difficulty = _BODY.unpack(body)
    if version != VERSION:
        raise ChallengeInvalid("The challenge has an unknown version.")
    if now.timestamp() >= expires:
        raise ChallengeExpired("The challenge has expired; ask for a new one.")
    if not (nonce.isascii() and nonce.isdigit()) or len(nonce) > MAX_NONCE_DIGITS:
        raise InsufficientWork(f"The nonce must be a decimal string of at most {MAX_NONCE_DIGITS} digits.")
    if leading_zero_bits(hashlib.sha256(raw + nonce.encode()).digest()) < difficulty:
        raise InsufficientWork(f"SHA-256(challenge || nonce) must start with {difficulty} zero bits.")
    return hashlib.sha256(raw).digest()


def extra_difficulty(recent_submissions: int, budget: int, max_extra_bits: int) -> int:
    """Bits added to the base difficulty while submissions exceed the shared budget: one
    more bit (twice the work) each time the count doubles past it."""
    if budget <= 0 or recent_submissions < budget:
        return 0
    return min(max_extra_bits, (recent_submissions // budget).bit_length())
