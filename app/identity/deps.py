from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import service_dependency
from app.identity.service import IdentityService

IdentityServiceDep = Annotated[IdentityService, Depends(service_dependency(IdentityService))]
