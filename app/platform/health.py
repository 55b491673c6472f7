"""Liveness, readiness and metrics for the operator."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.db.migrations import head_revision
from app.db.session import own_transaction
from app.platform.metrics import REGISTRY
from app.platform.problems import problem_json, problem_responses

router = APIRouter(tags=["operations"])
logger = logging.getLogger("cleanwindow.health")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    schema_revision: str


@router.get("/healthz", response_model=Health, summary="The process runs")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=problem_responses(503),
    summary="The database answers and its schema is at the migration head",
)
async def readyz(request: Request) -> Readiness | Response:
    expected = head_revision()
    try:
        async with own_transaction(request.app.state.context.sessionmaker) as session:
            found = await session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as error:  # any failure to reach or read the database means "not ready"
        logger.warning("readiness check failed", extra={"error_type": type(error).__name__})
        return problem_json(503, "The database does not answer.", title="Not ready")
    if found != expected:
        return problem_json(
            503,
            f"The database schema is at {found or 'no revision'}, not at {expected}; "
            "run `cleanwindow db upgrade`.",
            title="Not ready",
        )
    return Readiness(status="ready", schema_revision=found)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
