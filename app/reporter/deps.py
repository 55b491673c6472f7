from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import Now, service_dependency
from app.reporter.service import ReporterContext, ReporterService

_bearer = HTTPBearer(auto_error=False, scheme_name="ReporterSession")


ReporterServiceDep = Annotated[ReporterService, Depends(service_dependency(ReporterService))]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def reporter_context(service: ReporterServiceDep, credentials: Credentials, now: Now) -> ReporterContext:
    return await service.authenticate(credentials.credentials if credentials else None, now)


async def locked_reporter_context(service: ReporterServiceDep, credentials: Credentials, now: Now) -> ReporterContext:
    return await service.authenticate(credentials.credentials if credentials else None, now, lock=True)


async def streaming_reporter_context(service: ReporterServiceDep, credentials: Credentials, now: Now) -> ReporterContext:
    return await service.authenticate_briefly(credentials.credentials if credentials else None, now)


Reporter = Annotated[ReporterContext, Depends(reporter_context)]
# For uploads: checked in a transaction that ends at once, so that no connection and no
# lock is held while the body streams in for as long as the client takes.
ReporterStreaming = Annotated[ReporterContext, Depends(streaming_reporter_context)]
# For writes: the case row is locked until the request's transaction ends.
ReporterForUpdate = Annotated[ReporterContext, Depends(locked_reporter_context)]
