"""The audit log for auditors and administrators: pages of it, and the chain check."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api.deps import ContextDep, Now, SessionDep, require_roles
from app.audit.service import AuditLog
from app.domain.staff import Role
from app.platform.problems import problem_responses
from app.staff.models import StaffUser

router = APIRouter(prefix="/api/v1", tags=["audit"])

AuditReader = Annotated[StaffUser, Depends(require_roles(Role.AUDITOR, Role.ADMIN))]


async def write_ended_windows(_: AuditReader, session: SessionDep, context: ContextDep, now: Now) -> None:
    """Counted events of ended hours are written before the log is read, in a short
    transaction of its own (so a long verification does not hold the chain's head). Most
    reads find none to write and open no second transaction."""
    if not await AuditLog(session).has_ended_windows(now):
        return
    async with context.own_transaction() as own:
        await AuditLog(own).write_ended_windows(now)


EndedWindowsWritten = Depends(write_ended_windows)


class AuditEntryOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str | None = Field(description="Username at the time; null for the operator's command line.")
    actor_role: str | None
    action: str
    case_id: uuid.UUID | None
    details: dict[str, Any]
    prev_hash: str = Field(description="Hex SHA-256 of the previous entry (zeros for the first).")
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for older entries; null on the last page.")


class VerificationOut(BaseModel):
    ok: bool
    entries: int = Field(description="How many entries were checked.")
    first_bad: int | None = Field(description="The seq of the first entry that does not match its chain.")
    head_hash: str = Field(description="Hex hash of the last entry checked: keep it elsewhere to pin the chain.")


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=problem_responses(401, 403, 422),
    summary="The hash-chained audit log, newest first (auditor, admin)",
    dependencies=[EndedWindowsWritten],
)
async def audit_log(
    _: AuditReader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page.")
    ] = None,
    case_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> dict:
    entries = await AuditLog(session).page(
        limit=limit + 1, before_seq=int(cursor) if cursor else None, case_id=case_id, action=action
    )
    more = len(entries) > limit
    entries = entries[:limit]
    # Plain dicts: the response model validates them once (models built here would be
    # validated twice).
    return {
        "items": [
            {
                "seq": entry.seq,
                "occurred_at": entry.occurred_at,
                "actor": entry.actor_username,
                "actor_role": entry.actor_role,
                "action": entry.action,
                "case_id": entry.case_id,
                "details": entry.details,
                "prev_hash": entry.prev_hash.hex(),
                "hash": entry.hash.hex(),
            }
            for entry in entries
        ],
        "next_cursor": str(entries[-1].seq) if more and entries else None,
    }


@router.get(
    "/audit/verify",
    response_model=VerificationOut,
    responses=problem_responses(401, 403),
    summary="Recompute the whole chain and name the first entry that does not match (auditor, admin)",
    dependencies=[EndedWindowsWritten],
)
async def verify(_: AuditReader, session: SessionDep) -> VerificationOut:
    result = await AuditLog(session).verify()
    return VerificationOut(ok=result.ok, entries=result.entries, first_bad=result.first_bad, head_hash=result.head_hash.hex())
