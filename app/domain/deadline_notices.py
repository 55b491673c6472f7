"""Reminders before a case's deadline and escalations after it, as rules.

A case waits for one act at a time: its acknowledgement until it is acknowledged, then
its feedback until feedback is given (`triage.Deadlines.next_due`). For that waiting
deadline staff get a *reminder* in the last days before it (N days before, N of its own
setting) and a *missed* notice once the day has passed. Each notice is owed once per
(case, deadline, due date): a deadline that moves (feedback is recomputed at the
acknowledgement) is a new deadline, and a deadline missed long ago is one missed
notice, not one a day. A reminder never sent in time (the service was down) is not sent
late: past the day only the escalation is owed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from app.domain.notifications import EventKind
from app.domain.triage import Deadlines


class DeadlineName(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    FEEDBACK = "feedback"


class NoticeKind(StrEnum):
    REMINDER = "reminder"
    MISSED = "missed"


@dataclass(frozen=True)
class ReminderDays:
    """How many days before each deadline its reminder starts being owed."""

    acknowledge: int
    feedback: int

    def before(self, deadline: DeadlineName) -> int:
        return self.acknowledge if deadline is DeadlineName.ACKNOWLEDGE else self.feedback

    @property
    def longest(self) -> int:
        return max(self.acknowledge, self.feedback)


@dataclass(frozen=True)
class WaitingDeadline:
    name: DeadlineName
    due_on: date


@dataclass(frozen=True)
class DueNotice:
    """One notice owed: its identity is the whole tuple (the `deadline_notices` key)."""

    deadline: DeadlineName
    due_on: date
    notice: NoticeKind

    def details(self) -> dict[str, str]:
        """All an event about it says: which deadline and when, nothing about the case."""
        return {"deadline": self.deadline.value, "due_on": self.due_on.isoformat()}


def waiting_deadline(deadlines: Deadlines) -> WaitingDeadline | None:
    """The deadline whose act has not happened yet (its date is the case's stored
    `next_due_on`), or None: closed, or both acts done."""
    due_on = deadlines.next_due()
    if due_on is None:
        return None
    name = DeadlineName.ACKNOWLEDGE if deadlines.acknowledged_on is None else DeadlineName.FEEDBACK
    return WaitingDeadline(name, due_on)


def notice_due(deadlines: Deadlines, today: date, days: ReminderDays) -> DueNotice | None:
    """The notice the waiting deadline owes today, if any: a reminder from N days before
    the due date through the due date itself, the escalation from the day after."""
    waiting = waiting_deadline(deadlines)
    if waiting is None:
        return None
    if today > waiting.due_on:
        return DueNotice(waiting.name, waiting.due_on, NoticeKind.MISSED)
    if today >= waiting.due_on - timedelta(days=days.before(waiting.name)):
        return DueNotice(waiting.name, waiting.due_on, NoticeKind.REMINDER)
    return None


@dataclass(frozen=True)
class Addressee:
    """One event to write for a notice: its kind, the roles that take it when no named
    recipient can, and whether the case's assignee is that named recipient."""

    kind: EventKind
    audience: tuple[str, ...]
    to_assignee: bool


def addressees(notice: NoticeKind, assigned: bool) -> tuple[Addressee, ...]:
    """Who hears of a notice. A reminder goes to whoever must act: the assignee, else the
    triage team. A missed deadline is escalated to supervisors, and the assignee (else
    triage) hears too, so that the people who must act are never the last to know."""
    if notice is NoticeKind.REMINDER:
        return (Addressee(EventKind.DEADLINE_APPROACHING, ("triage",), to_assignee=assigned),)
    if assigned:
        return (
            Addressee(EventKind.DEADLINE_MISSED, ("supervisor",), to_assignee=False),
            Addressee(EventKind.DEADLINE_MISSED, ("triage",), to_assignee=True),
        )
    return (Addressee(EventKind.DEADLINE_MISSED, ("supervisor", "triage"), to_assignee=False),)
