"""Dependencies that make staff routers one-liners: the service, the caller, role checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.db.session import SessionDep
from app.domain.errors import Forbidden
from app.domain.staff import Role
from app.settings import Settings
from app.staff.models import StaffToken, StaffUser
from app.staff.service import StaffService

TOKEN_URL = "/api/v1/auth/token"

# auto_error=False: a missing token becomes our own 401 problem, not FastAPI's plain JSON.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def request_now(request: Request) -> datetime:
    """The request's instant, from the app's clock (`app.state.clock`, which tests replace);
    one instant per request, however many dependencies ask."""
    return request.app.state.clock()


Now = Annotated[datetime, Depends(request_now)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_staff_service(request: Request, session: SessionDep, settings: SettingsDep) -> StaffService:
    state = request.app.state
    return StaffService.from_settings(
        session, settings, sessionmaker=state.sessionmaker, hashing=state.password_hashing, cpu=state.cpu
    )


StaffServiceDep = Annotated[StaffService, Depends(get_staff_service)]


async def current_token(
    service: StaffServiceDep, token: Annotated[str | None, Depends(_bearer)], now: Now
) -> StaffToken:
    return await service.authenticate(token, now)


CurrentToken = Annotated[StaffToken, Depends(current_token)]


async def current_staff(token: CurrentToken) -> StaffUser:
    return token.user


CurrentStaff = Annotated[StaffUser, Depends(current_staff)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, StaffUser]]:
    """A dependency that admits only the given roles; later routers reuse it:
    `Annotated[StaffUser, Depends(require_roles(Role.TRIAGE, Role.SUPERVISOR))]`."""
    allowed = frozenset(roles)
    names = ", ".join(sorted(role.value for role in allowed))

    async def staff_with_role(user: CurrentStaff) -> StaffUser:
        if user.role_enum not in allowed:
            raise Forbidden(f"This needs one of the roles: {names}.")
        return user

    return staff_with_role


AdminUser = Annotated[StaffUser, Depends(require_roles(Role.ADMIN))]
