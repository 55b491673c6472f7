"""The dependencies every router shares: the context, settings, the request's session,
the clock, services, the calling staff member and role checks.

Routers of every feature import these from here, never from another feature:

    async def endpoint(user: CurrentStaff, service: CaseServiceDep, now: Now) -> ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import AppContext, Service
from app.domain.errors import Forbidden
from app.domain.staff import Role
from app.settings import Settings
from app.staff.models import StaffToken, StaffUser
from app.staff.service import StaffService

__all__ = [
    "AdminUser",
    "ContextDep",
    "CurrentStaff",
    "CurrentToken",
    "Now",
    "SessionDep",
    "SettingsDep",
    "require_roles",
    "service_dependency",
]

S = TypeVar("S", bound=Service)

TOKEN_URL = "/api/v1/auth/token"

# auto_error=False: a missing token becomes our own 401 problem, not FastAPI's plain JSON.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_context(request: Request) -> AppContext:
    return request.app.state.context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_now(context: ContextDep) -> datetime:
    return context.clock()


# The instant the request is handled, read once.
Now = Annotated[datetime, Depends(get_now)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    """The request's transaction: see the rule in `app/db/session.py`."""
    async with context.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit above runs before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def service_dependency(service: type[S]) -> Callable[..., Coroutine[Any, Any, S]]:
    """The one factory of every service:
    `XServiceDep = Annotated[XService, Depends(service_dependency(XService))]`."""

    async def build(session: SessionDep, context: ContextDep) -> S:
        return service(session, context)

    build.__name__ = f"get_{service.__name__}"
    return build


async def current_token(
    session: SessionDep, context: ContextDep, token: Annotated[str | None, Depends(_bearer)], now: Now
) -> StaffToken:
    return await StaffService(session, context).authenticate(token, now)


CurrentToken = Annotated[StaffToken, Depends(current_token)]


async def current_staff(token: CurrentToken) -> StaffUser:
    return token.user


CurrentStaff = Annotated[StaffUser, Depends(current_staff)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, StaffUser]]:
    """A dependency that admits only the given roles:
    `Annotated[StaffUser, Depends(require_roles(Role.TRIAGE, Role.SUPERVISOR))]`."""
    allowed = frozenset(roles)
    names = ", ".join(sorted(role.value for role in allowed))

    async def staff_with_role(user: CurrentStaff) -> StaffUser:
        if user.role_enum not in allowed:
            raise Forbidden(f"This needs one of the roles: {names}.")
        return user

    return staff_with_role


AdminUser = Annotated[StaffUser, Depends(require_roles(Role.ADMIN))]
