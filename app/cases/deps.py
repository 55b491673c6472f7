from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.cases.service import CaseService
from app.db.session import SessionDep
from app.staff.deps import SettingsDep


def get_case_service(request: Request, session: SessionDep, settings: SettingsDep) -> CaseService:
    return CaseService(session, sessionmaker=request.app.state.sessionmaker, settings=settings)


CaseServiceDep = Annotated[CaseService, Depends(get_case_service)]
