"""How long a closed case's content is kept, by how the case ended.

A case's content (the sealed report, the messages, the attachments, the keys that open
them, the sealed identity) is deleted a number of days after the case last closed; the
number depends on the outcome (docs/retention.md says why each default is what it is).
What statistics need stays: the case row's routing facts, dates and deadlines, and its
history. A reopened case has no closing date, so its clock stops until it closes again.

The settings name the days (`settings.retention`); the job maps them onto
`RetentionPolicy`, so this module reads no settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from app.domain.errors import Conflict
from app.domain.triage import Resolution


class Outcome(StrEnum):
    """How a case ended, as retention tells them apart."""

    # Closed without an investigation: not admissible, or a duplicate of another report.
    DISMISSED = "dismissed"
    SUBSTANTIATED = "substantiated"
    UNSUBSTANTIATED = "unsubstantiated"
    # Handed to an outside authority (`close_referral`, which records no resolution).
    REFERRED = "referred"


OUTCOME_OF_RESOLUTION: dict[Resolution | None, Outcome] = {
    Resolution.NOT_ADMISSIBLE: Outcome.DISMISSED,
    Resolution.DUPLICATE: Outcome.DISMISSED,
    Resolution.SUBSTANTIATED: Outcome.SUBSTANTIATED,
    Resolution.UNSUBSTANTIATED: Outcome.UNSUBSTANTIATED,
    # The only closing that carries no resolution is the end of a referral.
    None: Outcome.REFERRED,
}


def outcome_of(resolution: Resolution | str | None) -> Outcome:
    """The outcome of a closed case from its resolution; ValueError for an unknown one."""
    return OUTCOME_OF_RESOLUTION[None if resolution is None else Resolution(resolution)]


def resolutions_of(outcome: Outcome) -> list[Resolution | None]:
    """The resolutions a closed case of `outcome` carries (None: no resolution)."""
    return [resolution for resolution, named in OUTCOME_OF_RESOLUTION.items() if named is outcome]


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """Days the content of a closed case is kept after its closing day, by outcome."""

    dismissed_days: int
    substantiated_days: int
    unsubstantiated_days: int
    referred_days: int

    def __post_init__(self) -> None:
        for outcome in Outcome:
            if self.days_for(outcome) < 1:
                # Zero would delete a case the day it closes, before anyone could reopen it.
                raise ValueError(f"{outcome.value} cases must be kept at least one day")

    def days_for(self, outcome: Outcome) -> int:
        return getattr(self, f"{outcome.value}_days")

    def purge_on(self, closed_on: date, resolution: Resolution | str | None) -> date:
        """The day the content goes: kept for the policy's days counting the closing day
        as the first, so a 60-day case closed on 1 March goes on 30 April."""
        return closed_on + timedelta(days=self.days_for(outcome_of(resolution)))

    def is_due(self, closed_on: date | None, resolution: Resolution | str | None, today: date) -> bool:
        """Whether a case that closed on `closed_on` (None: open, or reopened) is due
        for the purge on `today`."""
        return closed_on is not None and self.purge_on(closed_on, resolution) <= today

    def closed_on_or_before(self, outcome: Outcome, today: date) -> date:
        """The last closing day whose cases of `outcome` are due on `today`: what a query
        compares `closed_on` with."""
        return today - timedelta(days=self.days_for(outcome))


class CasePurged(Conflict):
    slug = "case-purged"
    title = "The case's content was deleted by retention"


def refuse_if_purged(purged_on: date | None, refused: str) -> None:
    """Refuse an act on a purged case; `refused` says which ("This case cannot be reopened")."""
    if purged_on is not None:
        raise CasePurged(
            f"{refused}: its content was deleted by retention on {purged_on.isoformat()}; "
            "only its dates, routing facts and history remain.",
            purged_on=purged_on.isoformat(),
        )
