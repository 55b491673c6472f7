"""The staff identity API: thin translations between HTTP and `IdentityService`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.api.deps import CurrentStaff, Now
from app.domain.crypto import PublicKey
from app.identity.deps import IdentityServiceDep
from app.identity.schemas import (
    ApprovalIn,
    IdentityRequestIn,
    IdentityRequestOut,
    PendingOut,
    ReleasableOut,
    ReleasedIdentityOut,
    ReleaseIn,
    ReleaseWork,
    SealedIdentityKeyOut,
)
from app.identity.service import RequestView
from app.platform.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["identity"])


def request_out(view: RequestView) -> IdentityRequestOut:
    request, names = view.request, view.usernames
    return IdentityRequestOut(
        id=request.id,
        case_id=request.case_id,
        status=request.status,
        requested_by=names.get(request.requester_id, ""),
        requested_at=request.requested_at,
        reason=request.reason,
        reporter_answer=request.reporter_answer,
        approved_by=names.get(request.approver_id) if request.approver_id else None,
        approved_at=request.approved_at,
        legal_ground=request.legal_ground,
        notice_withheld=request.notice_withheld and request.notice_lifted_at is None,
        withheld_reason=request.withheld_reason if view.case_visible else None,
        notice_lifted_by=names.get(request.notice_lifted_by_id) if request.notice_lifted_by_id else None,
        released_by=names.get(request.custodian_id) if request.custodian_id else None,
        released_at=request.released_at,
        basis=request.basis,
        withdrawn_by=names.get(request.withdrawn_by_id) if request.withdrawn_by_id else None,
    )


@router.post(
    "/cases/{case_id}/identity-requests",
    response_model=IdentityRequestOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 404, 409, 422),
    summary="Ask to learn who the reporter is, with written reasons the reporter will read",
)
async def request_identity(
    case_id: uuid.UUID, body: IdentityRequestIn, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> IdentityRequestOut:
    return request_out(await service.request(user, case_id, body.reason, now))


@router.get(
    "/cases/{case_id}/identity-requests",
    response_model=list[IdentityRequestOut],
    responses=problem_responses(401, 404),
    summary="The case's identity requests, oldest first",
)
async def case_requests(case_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep) -> list[IdentityRequestOut]:
    return [request_out(view) for view in await service.requests_for_case(user, case_id)]


@router.get(
    "/cases/{case_id}/identity",
    response_model=ReleasedIdentityOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="The identity released to you, sealed: open the key with your private key",
)
async def released_identity(
    case_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> ReleasedIdentityOut:
    released = await service.released_identity(user, case_id, now)
    return ReleasedIdentityOut(
        case_id=released.case_id,
        request_id=released.request_id,
        sealed_identity=released.sealed_identity,
        identity_key=SealedIdentityKeyOut(
            fingerprint=released.sealed_key.recipient_fingerprint, sealed_key=released.sealed_key.sealed_key
        ),
    )


@router.get(
    "/identity-requests/pending",
    response_model=PendingOut,
    responses=problem_responses(401),
    summary="Requests waiting for you: to release (custodians), to weigh on a legal ground (supervisors)",
)
async def pending(user: CurrentStaff, service: IdentityServiceDep) -> PendingOut:
    work = await service.pending(user)
    return PendingOut(
        to_release=[
            ReleasableOut(
                request=request_out(item.view),
                requester=item.requester_username,
                requester_public_key=PublicKey(item.requester_public_key).to_text(),
                requester_fingerprint=item.requester_fingerprint,
            )
            for item in work.to_release
        ],
        to_approve=[request_out(view) for view in work.to_approve],
    )


@router.get(
    "/identity-requests/{request_id}/release-material",
    response_model=ReleaseWork,
    responses=problem_responses(401, 403, 404, 409),
    summary="For a custodian about to release: the identity key sealed to them (audited)",
)
async def release_material(request_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep, now: Now) -> ReleaseWork:
    material = await service.release_material(user, request_id, now)
    return ReleaseWork(
        request=request_out(material.view),
        requester=material.requester_username,
        requester_public_key=PublicKey(material.requester_public_key).to_text(),
        requester_fingerprint=material.requester_fingerprint,
        custodian_key=SealedIdentityKeyOut(
            fingerprint=material.custodian_key.recipient_fingerprint, sealed_key=material.custodian_key.sealed_key
        ),
        sealed_identity=material.sealed_identity,
    )


@router.get(
    "/identity-requests/{request_id}",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 404),
    summary="One identity request",
)
async def get_request(request_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep) -> IdentityRequestOut:
    return request_out(await service.get(user, request_id))


@router.post(
    "/identity-requests/{request_id}/approve",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="A supervisor records the legal ground that requires disclosure without consent",
)
async def approve(
    request_id: uuid.UUID, body: ApprovalIn, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> IdentityRequestOut:
    return request_out(await service.approve(user, request_id, body.legal_ground, body.withhold_notice_because, now))


@router.post(
    "/identity-requests/{request_id}/release",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="A custodian hands over the identity key, re-sealed on their machine to the requester",
)
async def release(
    request_id: uuid.UUID, body: ReleaseIn, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> IdentityRequestOut:
    return request_out(await service.release(user, request_id, body.fingerprint, body.sealed_key, now))


@router.post(
    "/identity-requests/{request_id}/unopenable",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="The requester: what was released to me does not open; make it releasable again",
)
async def report_unopenable(
    request_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> IdentityRequestOut:
    return request_out(await service.report_unopenable(user, request_id, now))


@router.post(
    "/identity-requests/{request_id}/withdraw",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="The requester or a supervisor drops a request that is not yet released",
)
async def withdraw(request_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep, now: Now) -> IdentityRequestOut:
    return request_out(await service.withdraw(user, request_id, now))


@router.post(
    "/identity-requests/{request_id}/lift-withholding",
    response_model=IdentityRequestOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="A supervisor lets the reporter be told of a legal decision that was kept from them",
)
async def lift_withholding(
    request_id: uuid.UUID, user: CurrentStaff, service: IdentityServiceDep, now: Now
) -> IdentityRequestOut:
    return request_out(await service.lift_withholding(user, request_id, now))
