"""Staff roles, usernames and passwords: the rules, with no storage attached."""

from __future__ import annotations

import re
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.domain.errors import InvalidInput
from app.domain.kdf import PRODUCTION_ARGON2, Argon2Parameters


class Role(StrEnum):
    ADMIN = "admin"
    TRIAGE = "triage"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    DRILL_COORDINATOR = "drill_coordinator"


USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")
MINIMUM_PASSWORD_LENGTH = 12
# Long enough for any passphrase; short enough that nobody can make Argon2 chew megabytes.
MAXIMUM_PASSWORD_LENGTH = 1024


def normalize_username(raw: str) -> str:
    username = raw.strip().lower()
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(
            "A username is 3 to 64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )
    return username


EMAIL_MAX_LENGTH = 320
# A plain address: one @, a dot in the domain, none of the characters that would make it
# a list, a display name or a route in a mail header (`,;<>()"[]:\`), no control
# characters. The SMTP server is the judge of the rest.
_ADDRESS_CHARACTER = r"[^@\s,;<>()\[\]:\"\\\x00-\x1f\x7f]"
EMAIL_PATTERN = re.compile(rf"{_ADDRESS_CHARACTER}{{1,64}}@[^@\s.,;<>()\[\]:\"\\\x00-\x1f\x7f]+(\.[^@\s.,;<>()\[\]:\"\\\x00-\x1f\x7f]+)+")


def normalize_email(raw: str) -> str:
    """An address for notices: the domain lower-cased, the local part as given."""
    address = raw.strip()
    if len(address) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.fullmatch(address):
        raise InvalidInput("An e-mail address looks like name@example.org (one @, a dot in the domain, no spaces).")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        raise InvalidInput(f"A password needs at least {MINIMUM_PASSWORD_LENGTH} characters.")
    if len(password) > MAXIMUM_PASSWORD_LENGTH:
        raise InvalidInput(f"A password has at most {MAXIMUM_PASSWORD_LENGTH} characters.")
    if username in password.lower():
        raise InvalidInput("A password must not contain the username.")


class PasswordHashing:
    """Argon2id; production's parameters are RFC 9106's low-memory option. Each hash
    encodes the parameters it was made with, and is verified with those."""

    def __init__(self, parameters: Argon2Parameters = PRODUCTION_ARGON2):
        self.parameters = parameters
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
        )
        # Verifying against this when the account does not exist keeps the response time
        # of "no such user" equal to that of "wrong password".
        self._decoy_hash = self._hasher.hash("decoy password that matches nothing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def burn_time(self, password: str) -> None:
        self.verify(self._decoy_hash, password)

    def verify_and_upgrade(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        """Verify, and when the hash was made with older parameters, the new hash to store
        (one call, so both happen within one slot of the hashing budget)."""
        if not self.verify(password_hash, password):
            return False, None
        return True, self.hash(password) if self.needs_rehash(password_hash) else None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
