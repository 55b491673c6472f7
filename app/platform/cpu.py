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
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from app.domain.clock import utc_now
from app.domain.errors import ServiceBusy
from app.platform.hourly import CompletedHours

T = TypeVar("T")
RunInSlot = Callable[..., Awaitable[Any]]

_executor: ThreadPoolExecutor | None = None


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The CPUs a container may use by its CPU limit (cgroup v2 `cpu.max`, or v1's CFS
    quota), rounded up; None when unlimited or unreadable. `os.cpu_count()` reports the
    node's cores, so a one-CPU pod on a 32-core node would otherwise run four hashes at
    once, four times the memory and each hash four times slower under throttling."""
    try:
        quota, _, period = (root / "cpu.max").read_text().partition(" ")
        if quota.strip() != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on (its affinity), within its container's limit."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    return max(1, min(available, limit) if limit is not None else available)


def default_slots() -> int:
    return max(1, min(usable_cpus(), 4))


def _shared_executor() -> ThreadPoolExecutor:
    # One pool for every budget in the process; the budgets' semaphores do the limiting.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="cpu-budget")
    return _executor


class CpuBudget:
    def __init__(self, slots: int, max_wait_seconds: float, clock: Callable[[], datetime] = utc_now):
        self.slots = slots
        self.max_wait_seconds = max_wait_seconds
        self._semaphore = asyncio.Semaphore(slots)
        self.clock = clock
        # How long callers waited for a slot, and how many gave up: /metrics tells them
        # for the last completed hour only (app/platform/hourly.py), since receipts are
        # hashed for reporters.
        self.waits = CompletedHours()
        self.refusals = CompletedHours()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[RunInSlot]:
        """Hold one slot for a sequence of steps; yields `run(fn, *args)`, which runs `fn`
        in a worker thread. Raises `ServiceBusy` if no slot frees up in time.

        If the caller is cancelled while its call still runs in the thread, the slot is
        given back only when the thread finishes: the work it bounds is still happening.
        """
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.max_wait_seconds)
        except TimeoutError:
            self.refusals.observe(self.clock())
            raise ServiceBusy(
                "The service is busy; try again in a moment.",
                retry_after_seconds=max(1, round(self.max_wait_seconds)),
            ) from None
        self.waits.observe(self.clock(), time.monotonic() - started)
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
