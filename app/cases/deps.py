from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import service_dependency
from app.cases.service import CaseService

CaseServiceDep = Annotated[CaseService, Depends(service_dependency(CaseService))]
