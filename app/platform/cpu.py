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
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.domain.errors import ServiceBusy

T = TypeVar("T")
RunInSlot = Callable[..., Awaitable[Any]]

_executor: ThreadPoolExecutor | None = None


def default_slots() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _shared_executor() -> ThreadPoolExecutor:
    # One pool for every budget in the process; the budgets' semaphores do the limiting.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="cpu-budget")
    return _executor


class CpuBudget:
    def __init__(self, slots: int, max_wait_seconds: float):
        self.slots = slots
        self.max_wait_seconds = max_wait_seconds
        self._semaphore = asyncio.Semaphore(slots)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[RunInSlot]:
        """Hold one slot for a sequence of steps; yields `run(fn, *args)`, which runs `fn`
        in a worker thread. Raises `ServiceBusy` if no slot frees up in time.

        If the caller is cancelled while its call still runs in the thread, the slot is
        given back only when the thread finishes: the work it bounds is still happening.
        """
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.max_wait_seconds)
        except TimeoutError:
            raise ServiceBusy(
                "The service is busy; try again in a moment.",
                retry_after_seconds=max(1, round(self.max_wait_seconds)),
            ) from None
        loop = asyncio.get_running_loop()
        running: list[Future[Any]] = []

        async def run(function: Callable[..., T], *args: object) -> T:
            future = _shared_executor().submit(function, *args)
            running.append(future)
            return await asyncio.wrap_future(future)

        try:
            yield run
        finally:
            unfinished = [future for future in running if not future.done()]
            if unfinished:
                unfinished[-1].add_done_callback(
                    lambda _: loop.call_soon_threadsafe(self._semaphore.release)
                )
            else:
                self._semaphore.release()

    async def run(self, function: Callable[..., T], *args: object) -> T:
        async with self.slot() as run:
            return await run(function, *args)
