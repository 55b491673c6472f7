"""Every capability's models, so that `Base.metadata` describes the whole schema (for
Alembic and the migration tests). It lives above `app.db`: the database layer imports no
feature; a new package with tables adds its models here."""

from app.audit.models import AuditEntry, AuditHead, AuditWindowCount
from app.cases.models import (
    AttachmentChunk,
    Case,
    CaseAttachment,
    CaseKey,
    CaseMessage,
    CaseTransition,
    DeadlineNotice,
)
from app.db.base import Base
from app.db.migrations import schema_compatibility
from app.drills.models import (
    DrillCampaign,
    DrillCampaignTransition,
    DrillCase,
    DrillEffect,
    DrillParticipantCode,
)
from app.identity.models import CaseIdentity, IdentityKey, IdentityRequest
from app.jobs.models import JobRun
from app.notifications.models import NotificationDelivery, NotificationEvent
from app.intake.models import Installation, IntakeBudget
from app.staff.models import StaffToken, StaffUser

__all__ = [
    "AttachmentChunk",
    "AuditEntry",
    "AuditHead",
    "AuditWindowCount",
    "Base",
    "Case",
    "CaseAttachment",
    "CaseKey",
    "CaseMessage",
    "CaseTransition",
    "DeadlineNotice",
    "JobRun",
    "NotificationDelivery",
    "NotificationEvent",
    "DrillCampaign",
    "DrillCampaignTransition",
    "DrillCase",
    "DrillEffect",
    "DrillParticipantCode",
    "CaseIdentity",
    "IdentityKey",
    "IdentityRequest",
    "Installation",
    "IntakeBudget",
    "StaffToken",
    "StaffUser",
    "schema_compatibility",
]
