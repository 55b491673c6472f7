"""Drill campaigns, their history, participant codes, drill cases' facts and simulated
effects.

Scenarios are fictitious by design and stored in the clear; what a drill report says is
sealed like any report. Nothing here names a participant: a code row holds its cohort,
its scenario and what became of it, never when.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey
from app.domain.drills import CampaignAction, CampaignState, Decision, Source, allowed_steps


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


# The domain's table, as the database enforces it on every recorded step.
STEP_CHECK = "(action, from_state, to_state) IN ({})".format(
    ", ".join(f"('{a.value}', '{f.value}', '{t.value}')" for a, f, t in allowed_steps())
)


class DrillCampaign(UUIDPrimaryKey, Base):
    __tablename__ = "drill_campaigns"
    __table_args__ = (
        CheckConstraint(_in("state", [state.value for state in CampaignState]), name="state"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("(state = 'closed') = (closed_at IS NOT NULL)", name="closed_at_when_closed"),
        CheckConstraint("scorecard IS NULL OR state = 'closed'", name="frozen_when_closed"),
        CheckConstraint("version >= 1 AND codes_issued >= 0 AND injections >= 0", name="counters"),
        Index("ix_drill_campaigns_created_by", "created_by_id", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    blind: Mapped[bool]
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scenarios: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # Batches of codes hand scenarios out round robin; injections too.
    codes_issued: Mapped[int] = mapped_column(default=0)
    injections: Mapped[int] = mapped_column(default=0)
    # Frozen at close: later reads return exactly these numbers.
    scorecard: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    purged_cases: Mapped[int | None]


class DrillCampaignTransition(UUIDPrimaryKey, Base):
    __tablename__ = "drill_campaign_transitions"
    __table_args__ = (
        CheckConstraint(_in("action", [action.value for action in CampaignAction]), name="action"),
        CheckConstraint(STEP_CHECK, name="allowed_step"),
        # The clock starts a campaign; a person takes every other step.
        # No actor: the clock's start, or the close of a campaign left open long after its
        # end (the drills.purge job); every other step names its coordinator.
        CheckConstraint("action = 'close' OR (action = 'start') = (actor_id IS NULL)", name="actor"),
        UniqueConstraint("campaign_id", "version", name="uq_drill_campaign_transitions_campaign_id_version"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drill_campaigns.id", ondelete="RESTRICT"))
    version: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id", ondelete="RESTRICT"))
    occurred_at: Mapped[datetime]


class DrillParticipantCode(Base):
    """A single-use code. Deliberately no time and no order: which code was used when
    would single out whoever was handed it."""

    __tablename__ = "drill_participant_codes"
    __table_args__ = (
        CheckConstraint(_in("decision", [decision.value for decision in Decision]), name="decision"),
        CheckConstraint("decision IS NULL OR used", name="decided_when_used"),
        CheckConstraint("scenario >= 1", name="scenario"),
        Index("ix_drill_participant_codes_campaign_id", "campaign_id"),
    )

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drill_campaigns.id", ondelete="RESTRICT"))
    cohort: Mapped[str | None] = mapped_column(String(64))
    scenario: Mapped[int] = mapped_column(SmallInteger)
    used: Mapped[bool] = mapped_column(default=False)
    decision: Mapped[str | None] = mapped_column(String(16))


class DrillCase(Base):
    """What the scorecard needs of a drill case beyond the case row; purged with it."""

    __tablename__ = "drill_cases"
    __table_args__ = (
        CheckConstraint(_in("source", [source.value for source in Source]), name="source"),
        CheckConstraint("scenario >= 1", name="scenario"),
        Index("ix_drill_cases_campaign_id", "campaign_id"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drill_campaigns.id", ondelete="RESTRICT"))
    scenario: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(16))
    # Exact for an injection (the coordinator's own act); a participant's report is timed
    # from the start of its hour, so no drill row holds the minute someone reported.
    received_at: Mapped[datetime]


class DrillEffect(UUIDPrimaryKey, Base):
    """An effect outside the service that a drill case would have caused (a referral to an
    outside authority; later a notification or webhook): recorded here, never performed."""

    __tablename__ = "drill_effects"
    __table_args__ = (Index("ix_drill_effects_campaign_id", "campaign_id"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drill_campaigns.id", ondelete="RESTRICT"))
    # Cleared when the drill case is purged; the effect stays counted on the campaign.
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
