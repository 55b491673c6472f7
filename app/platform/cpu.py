"""A bounded budget for CPU- and memory-heavy calls such as Argon2.

Each Argon2id evaluation takes ~64 MiB and a core for a noticeable time. Unbounded, a
flood of logins (which needs no account: unknown usernames cost a decoy evaluation too)
would exhaust the cores and memory of every replica and starve everything else,
reporter intake and readiness probes included. The budget runs at most `slots` calls at
once and makes the rest wait briefly; past that wait the caller gets a 503 and the
service stays responsive.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

from app.domain.errors import ServiceBusy

T = TypeVar("T")


def default_slots() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class CpuBudget:
    def __init__(self, slots: int, max_wait_seconds: float):
        self.slots = slots
        self.max_wait_seconds = max_wait_seconds
        self._semaphore = asyncio.Semaphore(slots)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.max_wait_seconds)
        except TimeoutError:
            raise ServiceBusy(
                "The service is busy; try again in a moment.",
                retry_after_seconds=max(1, round(self.max_wait_seconds)),
            ) from None
        try:
            return await asyncio.to_thread(function, *args)
        finally:
            self._semaphore.release()
