from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import require_roles, service_dependency
from app.domain.staff import Role
from app.drills.participation import ParticipationService
from app.drills.service import DrillService
from app.staff.models import StaffUser

DrillServiceDep = Annotated[DrillService, Depends(service_dependency(DrillService))]
ParticipationServiceDep = Annotated[ParticipationService, Depends(service_dependency(ParticipationService))]
# Drills are the coordinators' alone: other staff, administrators included, get 403.
Coordinator = Annotated[StaffUser, Depends(require_roles(Role.DRILL_COORDINATOR))]
