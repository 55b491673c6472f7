"""The case life cycle: states, the transition table, deadlines, what a reporter sees.

The table below is the contract's, in one place; the service asks `decide()` and never
encodes a rule of its own. The database mirrors the states in the CHECK constraint on
`cases.state`. ISO 37002 names the phases (receive, assess, address, conclude); the EU
Whistleblowing Directive 2019/1937 art. 9 sets the two deadlines.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from app.domain.errors import Conflict, Forbidden, InvalidInput
from app.domain.staff import Role


class CaseState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSESSING = "assessing"
    INVESTIGATING = "investigating"
    REFERRED = "referred"
    CLOSED = "closed"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    START_ASSESSMENT = "start_assessment"
    ACCEPT = "accept"
    DISMISS = "dismiss"
    REFER = "refer"
    CONCLUDE = "conclude"
    CLOSE_REFERRAL = "close_referral"
    REOPEN = "reopen"


class Resolution(StrEnum):
    NOT_ADMISSIBLE = "not_admissible"
    DUPLICATE = "duplicate"
    SUBSTANTIATED = "substantiated"
    UNSUBSTANTIATED = "unsubstantiated"


class Field(StrEnum):
    """What a transition request may carry besides the action."""

    REASON = "reason"
    RESOLUTION = "resolution"
    ASSIGNEE = "assignee"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[CaseState]
    target: CaseState
    # Roles allowed on any case they can see, and roles allowed only on a case assigned
    # to them ("assigned investigator" in the contract).
    roles: frozenset[Role]
    assigned_roles: frozenset[Role] = frozenset()
    required: frozenset[Field] = frozenset()
    resolutions: frozenset[Resolution] = frozenset()


_TRIAGE_TEAM = frozenset({Role.TRIAGE, Role.SUPERVISOR})

TRANSITIONS: Mapping[Action, Transition] = {
    Action.ACKNOWLEDGE: Transition(frozenset({CaseState.RECEIVED}), CaseState.ACKNOWLEDGED, _TRIAGE_TEAM),
    Action.START_ASSESSMENT: Transition(frozenset({CaseState.ACKNOWLEDGED}), CaseState.ASSESSING, _TRIAGE_TEAM),
    Action.ACCEPT: Transition(
        frozenset({CaseState.ASSESSING}), CaseState.INVESTIGATING, _TRIAGE_TEAM, required=frozenset({Field.ASSIGNEE})
    ),
    Action.DISMISS: Transition(
        frozenset({CaseState.ASSESSING}),
        CaseState.CLOSED,
        _TRIAGE_TEAM,
        required=frozenset({Field.RESOLUTION}),
        resolutions=frozenset({Resolution.NOT_ADMISSIBLE, Resolution.DUPLICATE}),
    ),
    Action.REFER: Transition(
        frozenset({CaseState.ASSESSING, CaseState.INVESTIGATING}),
        CaseState.REFERRED,
        _TRIAGE_TEAM,
        assigned_roles=frozenset({Role.INVESTIGATOR}),
    ),
    Action.CONCLUDE: Transition(
        frozenset({CaseState.INVESTIGATING}),
        CaseState.CLOSED,
        frozenset({Role.SUPERVISOR}),
        assigned_roles=frozenset({Role.INVESTIGATOR}),
        required=frozenset({Field.RESOLUTION}),
        resolutions=frozenset({Resolution.SUBSTANTIATED, Resolution.UNSUBSTANTIATED}),
    ),
    Action.CLOSE_REFERRAL: Transition(frozenset({CaseState.REFERRED}), CaseState.CLOSED, _TRIAGE_TEAM),
    Action.REOPEN: Transition(
        frozenset({CaseState.CLOSED}), CaseState.ASSESSING, frozenset({Role.SUPERVISOR}), required=frozenset({Field.REASON})
    ),
}

# Roles that see cases at all, and whether they see every case or only their own.
CASE_ROLES_ALL = frozenset({Role.TRIAGE, Role.SUPERVISOR})
CASE_ROLES_ASSIGNED = frozenset({Role.INVESTIGATOR})
CASE_ROLES = CASE_ROLES_ALL | CASE_ROLES_ASSIGNED


def may_see_case(role: Role, is_assignee: bool) -> bool:
    return role in CASE_ROLES_ALL or (role in CASE_ROLES_ASSIGNED and is_assignee)


def may_take(action: Action, role: Role, is_assignee: bool) -> bool:
    transition = TRANSITIONS[action]
    return role in transition.roles or (is_assignee and role in transition.assigned_roles)


def actions_from(state: CaseState) -> list[Action]:
    return [action for action, transition in TRANSITIONS.items() if state in transition.sources]


def allowed_actions(state: CaseState, role: Role, is_assignee: bool) -> list[Action]:
    """What this caller can do now: the buttons a client should offer."""
    return [action for action in actions_from(state) if may_take(action, role, is_assignee)]


class TransitionNotAllowed(Conflict):
    slug = "transition-not-allowed"
    title = "Action not allowed in this state"


class StaleVersion(Conflict):
    slug = "stale-version"
    title = "The case changed since you read it"


@dataclass(frozen=True)
class Request:
    action: Action
    expected_version: int
    reason: str | None = None
    resolution: Resolution | None = None
    assignee: str | None = None


def decide(state: CaseState, version: int, request: Request, role: Role, is_assignee: bool) -> CaseState:
    """The target state of a legal request, or the error that refuses it.

    Checked in this order: the version (a stale view explains everything after it), the
    state (409 naming what is possible from here), the role and assignment (403), then
    the fields (422). Fields the action does not take are refused, not ignored: a
    `resolution` on `refer` means the client believes something the server would drop.
    """
    if request.expected_version != version:
        raise StaleVersion(
            f"The case is at version {version}, not {request.expected_version}; read it again.",
            current_version=version,
        )
    transition = TRANSITIONS[request.action]
    if state not in transition.sources:
        possible = actions_from(state)
        names = ", ".join(possible) if possible else "none"
        raise TransitionNotAllowed(
            f"`{request.action}` is not possible from `{state}`; the actions from `{state}` are: {names}.",
            state=state.value,
            allowed_actions=[action.value for action in possible],
        )
    if not may_take(request.action, role, is_assignee):
        who = sorted(role.value for role in transition.roles) + [
            f"assigned {role.value}" for role in sorted(transition.assigned_roles)
        ]
        raise Forbidden(f"`{request.action}` needs one of: {', '.join(who)}.")
    given = {
        Field.REASON: request.reason is not None,
        Field.RESOLUTION: request.resolution is not None,
        Field.ASSIGNEE: request.assignee is not None,
    }
    missing = sorted(field.value for field in transition.required if not given[field])
    if missing:
        raise InvalidInput(f"`{request.action}` needs: {', '.join(missing)}.", missing=missing)
    # A reason is welcome on any action (it is the history's "why"); the others are not.
    unexpected = sorted(
        field.value for field, present in given.items() if present and field is not Field.REASON and field not in transition.required
    )
    if unexpected:
        raise InvalidInput(f"`{request.action}` does not take: {', '.join(unexpected)}.", unexpected=unexpected)
    if request.resolution is not None and request.resolution not in transition.resolutions:
        options = ", ".join(sorted(transition.resolutions))
        raise InvalidInput(f"`{request.action}` takes the resolution {options}, not `{request.resolution}`.")
    return transition.target


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


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def feedback_due(acknowledge_due_on: date, acknowledged_on: date | None, feedback_months: int) -> date:
    """Art. 9(1)(f): feedback within three months of the acknowledgement or, when none was
    sent, of the end of the seven days the acknowledgement was due in."""
    return add_months(acknowledged_on or acknowledge_due_on, feedback_months)


@dataclass(frozen=True)
class Deadlines:
    acknowledge_due_on: date
    acknowledged_on: date | None
    feedback_due_on: date
    feedback_given_on: date | None
    closed: bool

    def next_due(self) -> date | None:
        """The earliest deadline still waiting for its act, or None. A closed case waits
        for nothing (whether it met its deadlines is a statistic, not a queue item).
        Feedback is always due after the acknowledgement, so while that is pending it is
        the earliest."""
        if self.closed:
            return None
        if self.acknowledged_on is None:
            return self.acknowledge_due_on
        if self.feedback_given_on is None:
            return self.feedback_due_on
        return None

    def overdue(self, today: date) -> bool:
        """A deadline has passed without the act it asks for."""
        due = self.next_due()
        return due is not None and today > due
