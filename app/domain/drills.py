"""Mock drills: the campaign life cycle, injection tokens and participant codes.

A campaign is `scheduled` until its window opens, `running` while it takes drill reports,
`paused` when its coordinator holds it, and `closed` for good (its scorecard frozen, its
cases purged). The table below is the only place these rules live: the service asks
`decide()`, and the migration writes the same table into the CHECK constraint on
`drill_campaign_transitions`, so the database refuses a step the table does not allow.

A campaign takes a drill report only when it is running *and* its window is open
(`accepts_reports`): a token or code of a paused, closed, not yet started or ended
campaign is refused like an unknown one, so a drill can never slip in as a real case.

Tokens and codes are shown once and stored as keyed digests (`secret_digest`): without
the server's secret a database dump does not even let one test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.errors import Conflict, DomainError, InvalidInput


class CampaignState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CLOSED = "closed"


class CampaignAction(StrEnum):
    # Taken by the service itself, never by a person: when the window opens.
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CLOSE = "close"


class Source(StrEnum):
    """How a drill case came in."""

    INJECTION = "injection"
    PARTICIPANT = "participant"


class Decision(StrEnum):
    """What a participant did with their scenario."""

    REPORTED = "reported"
    NO_REPORT = "no_report"


# What a coordinator may ask for; `start` is the clock's.
COORDINATOR_ACTIONS = frozenset({CampaignAction.PAUSE, CampaignAction.RESUME, CampaignAction.CLOSE})

_OPEN = frozenset({CampaignState.SCHEDULED, CampaignState.RUNNING, CampaignState.PAUSED})

# action -> (states it may be taken from, the state it leads to)
TRANSITIONS: Mapping[CampaignAction, tuple[frozenset[CampaignState], CampaignState]] = {
    CampaignAction.START: (frozenset({CampaignState.SCHEDULED}), CampaignState.RUNNING),
    # A scheduled campaign may be held before it starts; resuming it lets the clock start it.
    CampaignAction.PAUSE: (
        frozenset({CampaignState.SCHEDULED, CampaignState.RUNNING}),
        CampaignState.PAUSED,
    ),
    CampaignAction.RESUME: (frozenset({CampaignState.PAUSED}), CampaignState.RUNNING),
    CampaignAction.CLOSE: (_OPEN, CampaignState.CLOSED),
}


def allowed_steps() -> list[tuple[CampaignAction, CampaignState, CampaignState]]:
    """Every (action, from, to) the table allows: what the database CHECK lists."""
    return sorted(
        (action, source, target)
        for action, (sources, target) in TRANSITIONS.items()
        for source in sources
    )


class CampaignActionNotAllowed(Conflict):
    slug = "campaign-action-not-allowed"
    title = "Campaign action not allowed in this state"


class CampaignClosed(Conflict):
    slug = "campaign-closed"
    title = "The campaign is closed"


def allowed_actions(state: CampaignState) -> list[CampaignAction]:
    """The coordinator's actions that `state` allows, in a stable order."""
    return [
        action
        for action in (CampaignAction.PAUSE, CampaignAction.RESUME, CampaignAction.CLOSE)
        if state in TRANSITIONS[action][0]
    ]


def decide(state: CampaignState, action: CampaignAction) -> CampaignState:
    """The state `action` leads to from `state`, or CampaignActionNotAllowed naming the
    actions that are allowed."""
    sources, target = TRANSITIONS[action]
    if state not in sources:
        allowed = allowed_actions(state)
        names = ", ".join(allowed) if allowed else "none (the campaign is closed)"
        raise CampaignActionNotAllowed(
            f"A {state} campaign cannot {action}; allowed now: {names}.",
            state=state.value,
            allowed_actions=[action.value for action in allowed],
        )
    return target


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise InvalidInput("starts_at and ends_at need a time zone (RFC 3339).", field="starts_at")
        if self.ends_at <= self.starts_at:
            raise InvalidInput("ends_at must come after starts_at.", field="ends_at")

    def is_open(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def catch_up(state: CampaignState, window: Window, now: datetime) -> CampaignAction | None:
    """The step the clock owes a campaign: `start` once a scheduled campaign's window has
    opened. Nothing else moves by itself; an ended campaign stays open to its coordinator
    until closed, so its scorecard is frozen when they say so."""
    if state is CampaignState.SCHEDULED and now >= window.starts_at:
        return CampaignAction.START
    return None


def current_state(state: CampaignState, window: Window, now: datetime) -> CampaignState:
    step = catch_up(state, window, now)
    return state if step is None else decide(state, step)


def accepts_reports(state: CampaignState, window: Window, now: datetime) -> bool:
    return current_state(state, window, now) is CampaignState.RUNNING and window.is_open(now)


# --- tokens and codes ----------------------------------------------------------------

# Crockford's base32: no I, L, O or U, so what is read aloud or typed is what was meant.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = re.compile(r"[\s\-_.·]+")

# A participant code: 12 symbols, 60 bits, typed from a slip of paper as XXXX-XXXX-XXXX.
CODE_SYMBOLS = 12
CODE_GROUP = 4
CODE_BITS = CODE_SYMBOLS * 5
# An injection token: 32 symbols, 160 bits; pasted, not typed.
TOKEN_SYMBOLS = 32
TOKEN_BITS = TOKEN_SYMBOLS * 5

_CODE_PURPOSE = b"drill participant code\x00"
_TOKEN_PURPOSE = b"drill injection token\x00"


class DrillTokenRejected(DomainError):
    """Every refusal of a token or code looks the same: unknown, used, paused, closed and
    out-of-window are one answer, so the refusal tells a guesser nothing."""

    slug = "drill-token-invalid"
    title = "Drill token not valid"
    status = 403


def _random_symbols(count: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(count))


def new_participant_code() -> str:
    symbols = _random_symbols(CODE_SYMBOLS)
    return "-".join(symbols[i : i + CODE_GROUP] for i in range(0, CODE_SYMBOLS, CODE_GROUP))


def new_injection_token() -> str:
    return _random_symbols(TOKEN_SYMBOLS)


def normalise(text: str) -> str | None:
    """A token or code as typed (any case, dashes, spaces, O for 0) in canonical form, or
    None if it cannot be one."""
    cleaned = _SEPARATORS.sub("", text).upper().translate(_CONFUSABLE)
    if len(cleaned) not in (CODE_SYMBOLS, TOKEN_SYMBOLS) or any(c not in _ALPHABET for c in cleaned):
        return None
    return cleaned


class SecretKind(StrEnum):
    CODE = "code"
    TOKEN = "token"


def kind_of(canonical: str) -> SecretKind:
    return SecretKind.CODE if len(canonical) == CODE_SYMBOLS else SecretKind.TOKEN


def secret_digest(secret_key: bytes, canonical: str) -> bytes:
    purpose = _CODE_PURPOSE if kind_of(canonical) is SecretKind.CODE else _TOKEN_PURPOSE
    return hmac.new(secret_key, purpose + canonical.encode(), hashlib.sha256).digest()


def presented_digest(secret_key: bytes, presented: str) -> str:
    """What identifies a presented token or code in an idempotent retry's fingerprint."""
    canonical = normalise(presented)
    return "malformed" if canonical is None else secret_digest(secret_key, canonical).hex()


def assign_scenarios(first_index: int, count: int, scenarios: int) -> list[int]:
    """Scenario numbers (1-based) for `count` new codes, continuing a round robin that has
    already handed out `first_index` codes, so every scenario gets its share."""
    return [(first_index + i) % scenarios + 1 for i in range(count)]
