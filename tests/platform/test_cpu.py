"""The hashing budget: bounded, and honest about work still running."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.domain.errors import ServiceBusy
from app.platform.cpu import CpuBudget


async def test_calls_beyond_the_slots_wait_then_get_busy() -> None:
    budget = CpuBudget(1, max_wait_seconds=0.05)
    async with budget.slot():
        with pytest.raises(ServiceBusy) as busy:
            await budget.run(sum, [1, 2])
    assert busy.value.status == 503
    assert busy.value.headers["Retry-After"] == "1"
    assert await budget.run(sum, [1, 2]) == 3


async def test_a_cancelled_caller_keeps_the_slot_until_its_thread_finishes() -> None:
    budget = CpuBudget(1, max_wait_seconds=0.05)
    release = threading.Event()
    started = threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(timeout=10)
        return "done"

    task = asyncio.create_task(budget.run(blocking))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread still runs: the slot is still taken.
    with pytest.raises(ServiceBusy):
        await budget.run(sum, [1])
    release.set()
    for _ in range(100):
        try:
            assert await budget.run(sum, [1]) == 1
            break
        except ServiceBusy:
            await asyncio.sleep(0.02)
    else:
        pytest.fail("the slot was never given back")
