from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import AdminUser, CurrentStaff, CurrentToken, Now, require_roles
from app.platform.problems import problem_response, problem_responses
from app.domain.crypto import PublicKey
from app.domain.staff import Role
from app.staff.deps import StaffServiceDep
from app.staff.models import StaffUser
from app.staff.schemas import ColleagueKeyOut, CustodianIn, EmailIn, PublicKeyIn, PublicKeyOut, StaffUserCreate, StaffUserOut, TokenResponse
from app.staff.service import LoginRefused

router = APIRouter(prefix="/api/v1", tags=["staff"])

CaseStaff = Annotated[StaffUser, Depends(require_roles(Role.TRIAGE, Role.SUPERVISOR, Role.INVESTIGATOR))]


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses=problem_responses(401, 422, 429, 503),
    summary="Log in with username and password (OAuth2 password form)",
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], service: StaffServiceDep, now: Now
) -> TokenResponse | Response:
    outcome = await service.login(form.username, form.password, now)
    if isinstance(outcome, LoginRefused):
        return problem_response(outcome.error)
    return TokenResponse(
        access_token=outcome.token,
        expires_at=outcome.expires_at,
        expires_in=int((outcome.expires_at - now).total_seconds()),
    )


@router.delete(
    "/auth/token",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
    summary="Revoke the token this request carries (log out)",
)
async def revoke_token(token: CurrentToken, service: StaffServiceDep, now: Now) -> None:
    await service.revoke(token, now)


@router.get("/users/me", response_model=StaffUserOut, responses=problem_responses(401))
async def me(user: CurrentStaff) -> StaffUserOut:
    return StaffUserOut.model_validate(user)


@router.put(
    "/users/me/public-key",
    response_model=PublicKeyOut,
    responses=problem_responses(401, 409, 422),
    summary="Register the public half of the caller's key pair (made with `cleanwindow keys generate`)",
)
async def register_public_key(body: PublicKeyIn, user: CurrentStaff, service: StaffServiceDep, now: Now) -> PublicKeyOut:
    public_key = await service.register_public_key(user, body.public_key, now)
    return PublicKeyOut(public_key=public_key.to_text(), fingerprint=public_key.fingerprint, registered_at=now)


@router.get(
    "/users",
    response_model=list[StaffUserOut],
    responses=problem_responses(401, 403),
    summary="List staff accounts (admin)",
)
async def list_users(_: AdminUser, service: StaffServiceDep) -> list[StaffUserOut]:
    return [StaffUserOut.model_validate(user) for user in await service.users()]


@router.post(
    "/users",
    response_model=StaffUserOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 409, 422, 503),
    summary="Create a staff account (admin)",
)
async def create_user(body: StaffUserCreate, admin: AdminUser, service: StaffServiceDep, now: Now) -> StaffUserOut:
    user = await service.create_user(body.username, body.role, body.password, actor=admin, now=now, email=body.email)
    return StaffUserOut.model_validate(user)


@router.post(
    "/users/{user_id}/deactivate",
    response_model=StaffUserOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="Deactivate a staff account and revoke all its tokens (admin)",
)
async def deactivate_user(
    user_id: uuid.UUID, admin: AdminUser, service: StaffServiceDep, now: Now
) -> StaffUserOut:
    user = await service.deactivate(user_id, admin, now)
    return StaffUserOut.model_validate(user)


@router.put(
    "/users/{user_id}/identity-custodian",
    response_model=StaffUserOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Make an account an identity custodian, or no longer (admin; never one's own)",
)
async def set_custodian(
    user_id: uuid.UUID, body: CustodianIn, admin: AdminUser, service: StaffServiceDep, now: Now
) -> StaffUserOut:
    return StaffUserOut.model_validate(await service.set_custodian(user_id, body.custodian, admin, now))


@router.put(
    "/users/{user_id}/email",
    response_model=StaffUserOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="Set or clear the address an account's notices go to (admin)",
)
async def set_email(
    user_id: uuid.UUID, body: EmailIn, admin: AdminUser, service: StaffServiceDep, now: Now
) -> StaffUserOut:
    return StaffUserOut.model_validate(await service.set_email(user_id, body.email, admin, now))


@router.post(
    "/users/{user_id}/unlock",
    response_model=StaffUserOut,
    responses=problem_responses(401, 403, 404),
    summary="Lift a login lock and forget the failed attempts (admin)",
)
async def unlock_user(user_id: uuid.UUID, admin: AdminUser, service: StaffServiceDep, now: Now) -> StaffUserOut:
    return StaffUserOut.model_validate(await service.unlock(user_id, actor=admin, now=now))


@router.get(
    "/users/{username}/public-key",
    response_model=ColleagueKeyOut,
    responses=problem_responses(401, 403, 404),
    summary="A colleague's registered public key, to seal a grant to (triage, supervisor, investigator)",
)
async def colleague_public_key(username: str, _: CaseStaff, service: StaffServiceDep) -> ColleagueKeyOut:
    user = await service.colleague_with_key(username)
    return ColleagueKeyOut(
        username=user.username,
        role=user.role,
        public_key=PublicKey(user.public_key).to_text(),
        fingerprint=user.public_key_fingerprint,
    )
