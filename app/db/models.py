"""Imports every capability's models so that `Base.metadata` describes the whole schema."""

from app.cases.models import AttachmentChunk, Case, CaseAttachment, CaseKey, CaseMessage
from app.db.base import Base
from app.intake.models import Installation, IntakeBudget
from app.staff.models import StaffToken, StaffUser

__all__ = [
    "AttachmentChunk",
    "Base",
    "Case",
    "CaseAttachment",
    "CaseKey",
    "CaseMessage",
    "Installation",
    "IntakeBudget",
    "StaffToken",
    "StaffUser",
]
