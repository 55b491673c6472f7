from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import service_dependency
from app.notifications.service import NotificationService

NotificationServiceDep = Annotated[NotificationService, Depends(service_dependency(NotificationService))]
