from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import service_dependency
from app.intake.service import IntakeService

IntakeServiceDep = Annotated[IntakeService, Depends(service_dependency(IntakeService))]
