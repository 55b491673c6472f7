from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.db.session import SessionDep
from app.reporter.service import ReporterContext, ReporterService
from app.staff.deps import SettingsDep, utc_now

_bearer = HTTPBearer(auto_error=False, scheme_name="ReporterSession")


def get_reporter_service(request: Request, session: SessionDep, settings: SettingsDep) -> ReporterService:
    state = request.app.state
    return ReporterService(
        session,
        sessionmaker=state.sessionmaker,
        settings=settings,
        receipt_cpu=state.receipt_cpu,
        receipt_salt=state.receipt_salt,
        receipt_scheme=state.key_derivation.receipts,
    )


ReporterServiceDep = Annotated[ReporterService, Depends(get_reporter_service)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def reporter_context(service: ReporterServiceDep, credentials: Credentials) -> ReporterContext:
    return await service.authenticate(credentials.credentials if credentials else None, utc_now())


async def locked_reporter_context(service: ReporterServiceDep, credentials: Credentials) -> ReporterContext:
    return await service.authenticate(credentials.credentials if credentials else None, utc_now(), lock=True)


Reporter = Annotated[ReporterContext, Depends(reporter_context)]
# For writes: the case row is locked until the request's transaction ends.
ReporterForUpdate = Annotated[ReporterContext, Depends(locked_reporter_context)]
