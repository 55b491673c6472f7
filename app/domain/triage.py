"""The case life cycle as far as intake needs it: states, what a reporter sees, deadlines.

The transition table itself arrives with the triage API; the states are fixed by the
contract and mirrored in the database's CHECK constraint on `cases.state`.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum


class CaseState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSESSING = "assessing"
    INVESTIGATING = "investigating"
    REFERRED = "referred"
    CLOSED = "closed"


# What the reporter is told: enough to know the report is being handled, not the
# internal step (an "investigating" visible to a suspect reading over a shoulder says more
# than "in progress").
PUBLIC_STATUS = {
    CaseState.RECEIVED: "received",
    CaseState.ACKNOWLEDGED: "in_review",
    CaseState.ASSESSING: "in_review",
    CaseState.INVESTIGATING: "in_progress",
    CaseState.REFERRED: "referred",
    CaseState.CLOSED: "closed",
}


def public_status(state: str) -> str:
    return PUBLIC_STATUS[CaseState(state)]


def acknowledgement_due(received_on: date, acknowledge_days: int) -> date:
    """EU Directive 2019/1937 art. 9(1)(b): acknowledge within seven days of receipt."""
    return received_on + timedelta(days=acknowledge_days)
