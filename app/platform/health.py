"""Liveness, readiness and metrics for the operator."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from app.db.migrations import check_schema
from app.db.session import own_transaction
from app.domain.errors import NotAuthenticated, NotFound
from app.platform.metrics import exposition
from app.platform.problems import problem_json, problem_responses

router = APIRouter(tags=["operations"])
logger = logging.getLogger("cleanwindow.health")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    schema_revision: str
    # "current", or "ahead, compatible" while a rolling deploy has migrated past this
    # replica's code (docs/operations.md, "Upgrading").
    schema_fit: str


@router.get("/healthz", response_model=Health, summary="The process runs")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=problem_responses(503),
    summary="The database answers and this code may run on its schema",
    description=(
        "200 when the schema is at this version's migration head, or newer and declared "
        "compatible with it (a rolling deploy); 503 when the database does not answer, the "
        "schema is behind, or it is newer and incompatible."
    ),
)
async def readyz(request: Request) -> Readiness | Response:
    try:
        async with own_transaction(request.app.state.context.sessionmaker) as session:
            check = await check_schema(await session.connection())
    except Exception as error:  # any failure to reach or read the database means "not ready"
        logger.warning("readiness check failed", extra={"error_type": type(error).__name__})
        return problem_json(503, "The database does not answer.", title="Not ready")
    if not check.fit.runnable:
        return problem_json(503, check.explanation(), title="Not ready")
    return Readiness(status="ready", schema_revision=check.found, schema_fit=check.fit.value)


_metrics_bearer = HTTPBearer(
    scheme_name="MetricsToken",
    description="The value of CLEANWINDOW_METRICS_TOKEN (for Prometheus, not staff).",
    auto_error=False,
)


def token_matches(presented: str, configured: str) -> bool:
    # Compared as digests with compare_digest: the time taken says nothing about how much
    # of the token, or of its length, was right.
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(configured.encode()).digest()
    )


async def require_metrics_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """Metrics show when staff work; only the scraper holding the token may read them."""
    configured = request.app.state.context.settings.metrics_token
    if configured is None:
        raise NotFound("Metrics are not served: CLEANWINDOW_METRICS_TOKEN is not set.")
    if credentials is None or not token_matches(credentials.credentials, configured.get_secret_value()):
        raise NotAuthenticated("/metrics needs the bearer token set in CLEANWINDOW_METRICS_TOKEN.")


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (bearer token CLEANWINDOW_METRICS_TOKEN)",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problem_responses(401, 404)},
    dependencies=[Depends(require_metrics_token)],
)
async def metrics(request: Request) -> Response:
    collectors = getattr(request.app.state, "scrape_collectors", ())
    return Response(await exposition(request.app.state.context, collectors), media_type=CONTENT_TYPE_LATEST)
