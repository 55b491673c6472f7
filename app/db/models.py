"""Imports every capability's models so that `Base.metadata` describes the whole schema."""

from app.db.base import Base
from app.staff.models import StaffToken, StaffUser

__all__ = ["Base", "StaffToken", "StaffUser"]
