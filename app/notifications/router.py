"""Dead letters: deliveries given up after their last retry, for administrators."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from app.api.deps import AdminUser, Now
from app.notifications.deps import NotificationServiceDep
from app.notifications.schemas import DeliveryOut
from app.platform.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get(
    "/notifications/failed",
    response_model=list[DeliveryOut],
    responses=problem_responses(401, 403, 422),
    summary="Notices given up after their last retry, newest first (admin)",
)
async def failed(
    _: AdminUser, service: NotificationServiceDep, limit: int = Query(100, ge=1, le=1000)
) -> list[DeliveryOut]:
    return [DeliveryOut.model_validate(delivery) for delivery in await service.dead_letters(limit)]


@router.post(
    "/notifications/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=problem_responses(401, 403, 404, 409),
    summary="Send a dead letter again, with a fresh count of tries (admin)",
)
async def retry(delivery_id: uuid.UUID, admin: AdminUser, service: NotificationServiceDep, now: Now) -> DeliveryOut:
    return DeliveryOut.model_validate(await service.retry(delivery_id, admin, now))
