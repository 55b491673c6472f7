from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db.session import SessionDep
from app.intake.service import IntakeService
from app.staff.deps import SettingsDep


def get_intake_service(request: Request, session: SessionDep, settings: SettingsDep) -> IntakeService:
    state = request.app.state
    return IntakeService(
        session,
        sessionmaker=state.sessionmaker,
        settings=settings,
        receipt_cpu=state.receipt_cpu,
        receipt_salt=state.receipt_salt,
        receipt_scheme=state.key_derivation.receipts,
    )


IntakeServiceDep = Annotated[IntakeService, Depends(get_intake_service)]
