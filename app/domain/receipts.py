"""Receipts: the reporter's only credential, and the keys derived from it.

A receipt is 20 random decimal digits (66.4 bits) and a Damm check digit, shown as seven
groups of three. Digits only, because a phone shows a number pad for them and they read
the same in Korean and English; the check digit catches every single mistyped digit and
every swap of two neighbours before any expensive work is done or any failure counted.

From the receipt, one Argon2id evaluation (salted with the installation's salt) yields a
32-byte master secret; HKDF splits it into the lookup tag the database stores (to find
the case) and the seed of the reporter's key pair (to which the case's content key is
sealed). The receipt itself is never stored. See docs/crypto.md for the guessing analysis.

The Argon2id parameters are part of the tag's format: a tag can only be found again with
the parameters it was made with, so each case stores the number of its receipt scheme
(`app.domain.kdf.ReceiptScheme`), and each number stands for one set of parameters.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from app.domain.crypto import PRIVATE_SEED_BYTES, PrivateKey, hkdf
from app.domain.errors import InvalidInput
from app.domain.kdf import ReceiptScheme

RANDOM_DIGITS = 20
RECEIPT_DIGITS = RANDOM_DIGITS + 1
GROUP = 3
ENTROPY_BITS = 66.4  # 20 * log2(10)
MASTER_BYTES = 32

# The Damm algorithm's quasigroup of order 10 (weakly totally anti-symmetric).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
_SEPARATORS = re.compile(r"[\s\-.·]+")


class MalformedReceipt(InvalidInput):
    slug = "malformed-receipt"
    title = "Malformed receipt"


def damm_check_digit(digits: str) -> int:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][int(digit)]
    return interim


def format_receipt(digits: str) -> str:
    return "-".join(digits[i : i + GROUP] for i in range(0, len(digits), GROUP))


def new_receipt() -> str:
    random_part = "".join(str(secrets.randbelow(10)) for _ in range(RANDOM_DIGITS))
    return format_receipt(random_part + str(damm_check_digit(random_part)))


def parse_receipt(text: str) -> str:
    """The receipt's digits, or `MalformedReceipt` saying what is wrong with what was typed.
    Spaces, dashes and dots between digits are ignored."""
    digits = _SEPARATORS.sub("", text)
    if not digits.isascii() or not digits.isdigit():
        raise MalformedReceipt("A receipt has only digits (spaces and dashes are ignored).")
    if len(digits) != RECEIPT_DIGITS:
        raise MalformedReceipt(f"A receipt has {RECEIPT_DIGITS} digits; this has {len(digits)}.")
    if damm_check_digit(digits) != 0:
        raise MalformedReceipt("This receipt has a typing mistake: its check digit does not match.")
    return digits


@dataclass(frozen=True)
class ReceiptSecrets:
    """What one Argon2id evaluation of a receipt yields."""

    master: bytes

    @property
    def lookup_tag(self) -> bytes:
        return hkdf(self.master, b"receipt-lookup")

    def reporter_key(self) -> PrivateKey:
        return PrivateKey(hkdf(self.master, b"reporter-key", length=PRIVATE_SEED_BYTES))


def derive_receipt_secrets(digits: str, salt: bytes, scheme: ReceiptScheme) -> ReceiptSecrets:
    """The expensive step (≈0.1 s and 64 MiB with production's scheme): run it inside a
    CPU budget."""
    master = hash_secret_raw(
        digits.encode(),
        salt,
        time_cost=scheme.argon2.time_cost,
        memory_cost=scheme.argon2.memory_kib,
        parallelism=scheme.argon2.parallelism,
        hash_len=MASTER_BYTES,
        type=Type.ID,
    )
    return ReceiptSecrets(master)
