"""The audit chain: how an entry is hashed, and how a chain is checked.

Each entry's hash covers its own fields and the previous entry's hash, so changing,
removing or reordering any entry changes every hash after it. The database keeps the
entries and refuses updates and deletes; this module knows nothing of storage, so the
same code hashes on append and re-hashes on verification.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

GENESIS_HASH = bytes(32)
FORMAT = "cleanwindow-audit/v1"


class AuditAction(StrEnum):
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    # One entry per hour with a count: failed logins for usernames that do not exist.
    LOGIN_FAILED_UNKNOWN_USER = "auth.login_failed_unknown_user"
    # Likewise for deactivated accounts, after the first refusal (logged, named).
    LOGIN_FAILED_INACTIVE_ACCOUNT = "auth.login_failed_inactive_account"
    LOGOUT = "auth.logout"
    KEY_REGISTERED = "key.registered"
    USER_CREATED = "user.created"
    USER_DEACTIVATED = "user.deactivated"
    USER_UNLOCKED = "user.unlocked"
    USER_CUSTODIAN_SET = "user.custodian_set"
    USER_CUSTODIAN_UNSET = "user.custodian_unset"
    # The address itself is not written: the entry says that it changed, and who changed it.
    USER_EMAIL_SET = "user.email_set"
    USER_EMAIL_CLEARED = "user.email_cleared"
    # An administrator sent a dead letter back to the delivery queue.
    NOTIFICATION_RETRIED = "notification.retried"
    CASE_READ = "case.read"
    ATTACHMENT_READ = "case.attachment_read"
    CASE_TRANSITION = "case.transition"
    CASE_MESSAGE = "case.message"
    CASE_GRANT = "case.grant"
    # Retention deleted a closed case's content (the system's act: no actor), with the
    # outcome, the days the policy kept it and how many rows went.
    CASE_PURGED = "case.purged"
    # Confidential identity. The reporter's consent or refusal is not entered when given
    # (an exact time); the staff step relying on it carries it, with its date.
    IDENTITY_REQUESTED = "identity.requested"
    IDENTITY_APPROVED = "identity.approved"
    # A custodian fetched the identity key sealed to them, to release one request.
    IDENTITY_KEY_FETCHED = "identity.key_fetched"
    IDENTITY_RELEASED = "identity.released"
    # The requester could not open what was released; the request is releasable again.
    IDENTITY_RELEASE_UNOPENABLE = "identity.release_unopenable"
    IDENTITY_WITHDRAWN = "identity.withdrawn"
    IDENTITY_NOTICE_LIFTED = "identity.notice_lifted"
    IDENTITY_READ = "identity.read"
    DRILL_CREATED = "drill.created"
    DRILL_TRANSITION = "drill.transition"
    DRILL_CODES_ISSUED = "drill.codes_issued"
    # Close: the scorecard frozen and the campaign's cases purged, with their number.
    DRILL_PURGED = "drill.purged"


# Events counted rather than logged one by one are counted per window this long.
COUNTING_WINDOW_SECONDS = 3600


def counting_window_start(moment: datetime) -> datetime:
    """The start (UTC, on the hour) of the counting window `moment` falls in."""
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(seconds - seconds % COUNTING_WINDOW_SECONDS, UTC)


@dataclass(frozen=True)
class AuditRecord:
    """An entry's content; `seq` and the hashes are given by its place in the chain."""

    occurred_at: datetime
    action: AuditAction | str
    actor_id: uuid.UUID | None = None
    actor_username: str | None = None
    actor_role: str | None = None
    case_id: uuid.UUID | None = None
    # Strings, integers, booleans and None only: a float could come back from jsonb
    # spelled differently and break its own hash.
    details: Mapping[str, Any] = field(default_factory=dict)


_PLAIN_TYPES = (str, int, bool, type(None))


def _check_plain(value: Any) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("audit details keys are strings")
            _check_plain(item)
    elif not isinstance(value, _PLAIN_TYPES) or isinstance(value, float):
        raise TypeError(f"audit details hold strings, integers, booleans and None, not {type(value).__name__}")


def canonical_bytes(seq: int, record: AuditRecord) -> bytes:
    _check_plain(record.details)
    occurred_at = record.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    body = {
        "format": FORMAT,
        "seq": seq,
        "occurred_at": occurred_at,
        "action": str(record.action),
        "actor_id": str(record.actor_id) if record.actor_id else None,
        "actor_username": record.actor_username,
        "actor_role": record.actor_role,
        "case_id": str(record.case_id) if record.case_id else None,
        "details": dict(record.details),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: bytes, seq: int, record: AuditRecord) -> bytes:
    return hashlib.sha256(prev_hash + canonical_bytes(seq, record)).digest()


@dataclass(frozen=True)
class StoredEntry:
    seq: int
    record: AuditRecord
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad: int | None
    head_hash: bytes


class ChainVerifier:
    """Fed the entries in order (in batches, so a long chain never sits in memory)."""

    def __init__(self) -> None:
        self.expected_seq = 1
        self.running_hash = GENESIS_HASH
        self.entries = 0
        self.first_bad: int | None = None

    def feed(self, entries: Iterable[StoredEntry]) -> None:
        for entry in entries:
            self.entries += 1
            if self.first_bad is not None:
                continue
            recomputed = entry_hash(self.running_hash, entry.seq, entry.record)
            if entry.seq != self.expected_seq or entry.prev_hash != self.running_hash or entry.hash != recomputed:
                # A missing entry shows as a gap: name the first seq that is not as it should be.
                self.first_bad = min(entry.seq, self.expected_seq)
                continue
            self.running_hash = entry.hash
            self.expected_seq += 1

    def finish(self, head_seq: int, head_hash: bytes, last_stored_seq: int | None = None) -> Verification:
        """`head_*` is what the append path last wrote, and `last_stored_seq` the highest
        seq stored, read in the same snapshot. Entries cut off the end of the chain leave
        no gap but leave the head pointing past the last entry; entries written around
        the append path (or a rewound head) leave entries beyond the head."""
        if self.first_bad is None and last_stored_seq is not None and last_stored_seq > head_seq:
            self.first_bad = head_seq + 1
        if self.first_bad is None and (head_seq != self.expected_seq - 1 or head_hash != self.running_hash):
            # Entries missing at the end: the first missing seq; else the last entry
            # disagrees with the head.
            self.first_bad = self.expected_seq if head_seq != self.expected_seq - 1 else head_seq
        return Verification(self.first_bad is None, self.entries, self.first_bad, self.running_hash)


def should_alert_audit_failure(
    first_bad: int | None, today: date, *, last_alert_first_bad: int | None, last_alert_on: date | None
) -> bool:
    """A broken chain is told at once, then once a day while it stays broken: silence on
    the second day would read as "fixed". A different first bad entry is a new failure,
    told at once even on the same day."""
    if last_alert_on is None:
        return True
    return last_alert_on != today or last_alert_first_bad != first_bad
