"""Thirty people in one training room, behind one address, send their reports from the
page at the same moment: every one gets a receipt. The service never sees an address,
so nothing can single the room out; what bounds form reports is a budget shared by all."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.cases.models import Case
from tests.web.test_report import FIELDS, carried

pytestmark = pytest.mark.slow
ROOM = 30


async def test_thirty_people_behind_one_address_all_get_a_receipt(site: str, fresh_database_url: str) -> None:
    limits = httpx.Limits(max_connections=ROOM, max_keepalive_connections=ROOM)
    async with httpx.AsyncClient(base_url=site, limits=limits, timeout=120) as room:  # one address: 127.0.0.1
        forms = [carried((await room.get("/report")).text) for _ in range(ROOM)]
        checks = [await room.post("/report", data={**form, **FIELDS, "step": "check"}) for form in forms]
        await asyncio.sleep(1.2)  # the test service's minimum form age
        sent = await asyncio.gather(
            *(room.post("/report", data={**carried(check.text), "step": "send"}) for check in checks)
        )
    assert [answer.status_code for answer in sent] == [200] * ROOM
    receipts = {"".join(re.findall(r'<span class="receipt-group">(\d{3})</span>', answer.text)) for answer in sent}
    assert len(receipts) == ROOM and all(len(receipt) == 21 for receipt in receipts)
    engine = create_async_engine(fresh_database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Case)) == ROOM
    finally:
        await engine.dispose()
