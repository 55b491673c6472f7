"""Delivery of the outbox (being written)."""

from __future__ import annotations

from app.context import AppContext
from app.jobs.registry import JobResult


async def deliver_notifications(context: AppContext) -> JobResult:
    raise NotImplementedError
