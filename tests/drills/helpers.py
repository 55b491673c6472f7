"""A drill coordinator's steps, for tests: campaign bodies, creating and driving one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.domain.clock import utc_now


def scenario(
    category: str = "bribery",
    org_unit: str | None = "construction_transport",
    *,
    report: bool = True,
    marker: str = "",
) -> dict[str, Any]:
    """An inline scenario; a decoy (`report=False`) expects nothing."""
    return {
        "title": {"ko": f"허가 대가 상품권 {marker}".strip(), "en": f"Gift cards for a permit {marker}".strip()},
        "brief": {
            "ko": "가상건설 직원이 건축허가 담당자에게 상품권 봉투를 건네는 것을 보았습니다.",
            "en": "You saw an employee of Gasang Construction hand the permit officer an envelope of gift cards.",
        },
        "report": {
            "channel": "employee",
            "category": category,
            "org_unit": org_unit,
            "language": "ko",
            "content": {
                "summary": f"건축허가 담당자 상품권 수수 {marker}".strip(),
                "details": f"가상건설 직원이 허가 서류와 함께 상품권 봉투를 건넸습니다. {marker}".strip(),
            },
        },
        "expected": (
            {"report": True, "category": category, "org_unit": org_unit}
            if report
            else {"report": False, "category": None, "org_unit": None}
        ),
    }


def campaign_body(
    *,
    name: str = "2026 하반기 모의훈련",
    blind: bool = True,
    scenarios: list[dict[str, Any]] | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utc_now()
    starts_at = starts_at or now - timedelta(minutes=5)
    ends_at = ends_at or now + timedelta(days=3)
    return {
        "name": name,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "blind": blind,
        "scenarios": scenarios or [scenario(), scenario("hiring", "human_resources"), scenario(report=False)],
    }


async def create_campaign(client: httpx.AsyncClient, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/drills", json=campaign_body(**kwargs), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def issue_codes(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str, count: int, cohort: str | None = None
) -> list[str]:
    body: dict[str, Any] = {"count": count}
    if cohort is not None:
        body["cohort"] = cohort
    response = await client.post(f"/api/v1/drills/{campaign_id}/participants", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["codes"]


async def inject(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str, scenario_number: int | None = None
) -> dict[str, Any]:
    body = {} if scenario_number is None else {"scenario": scenario_number}
    response = await client.post(f"/api/v1/drills/{campaign_id}/inject", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def act(client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str, action: str) -> httpx.Response:
    return await client.post(f"/api/v1/drills/{campaign_id}/{action}", headers=headers)
