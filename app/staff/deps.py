from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import service_dependency
from app.staff.service import StaffService

StaffServiceDep = Annotated[StaffService, Depends(service_dependency(StaffService))]
