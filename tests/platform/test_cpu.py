"""The hashing budget: bounded, and honest about work still running."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from app.domain.errors import ServiceBusy
from app.platform.cpu import CpuBudget, cgroup_cpu_limit, usable_cpus


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


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: a second hash still gets half a core
        ({"cpu.max": "20000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
        ({"cpu.max": "garbage"}, None),
    ],
)
def test_a_containers_cpu_limit_is_read_from_its_cgroup(tmp_path: Path, files: dict[str, str], limit) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_the_hash_slots_follow_the_container_limit_not_the_nodes_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))
