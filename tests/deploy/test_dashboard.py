"""The Grafana dashboard asks only for metrics /metrics really serves, by labels they
really carry, and has a panel for each figure an operator watches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.domain.clock import utc_now
from app.domain.staff import Role
from app.jobs.models import JobRun
from app.settings import Settings

METRICS_TOKEN = "metrics-token-for-the-scraper-0123456789abcdef"
METRIC_NAME = re.compile(r"\bcleanwindow_[a-z_]+\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"(cleanwindow_[a-z_]+)\{([^}]*)\}")
LEGEND_LABEL = re.compile(r"\{\{(\w+)\}\}")
# What the issue behind the dashboard asks an operator to see at a glance.
WATCHED = {
    "cleanwindow_intake_reports_last_hour": "intake per hour",
    "cleanwindow_cases": "the queue by state",
    "cleanwindow_cases_overdue": "overdue cases",
    "cleanwindow_hash_wait_seconds_last_hour": "the KDF wait",
    "cleanwindow_outbox_backlog": "the outbox backlog",
    "cleanwindow_job_failures_total": "job failures",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


def dashboard(project_root: Path) -> dict:
    return json.loads((project_root / "deploy" / "grafana" / "cleanwindow.json").read_text())


def expressions(board: dict) -> list[tuple[str, str]]:
    return [(target["expr"], target.get("legendFormat", "")) for panel in board["panels"] for target in panel["targets"]]


async def served_labels(client: httpx.AsyncClient, sessionmaker, staff) -> dict[str, set[str]]:
    """Every family the service serves once there is something to count, with the labels
    of its samples (`_bucket`, `_total` and the like by their sample names)."""
    async with sessionmaker() as session:
        now = utc_now().replace(microsecond=0)
        session.add(JobRun(name="cleanup.expired", runs=2, failures=1, last_succeeded_at=now))
        session.add(JobRun(name="audit.verify", runs=1, failures=0, last_succeeded_at=now, last_result={"ok": True}))
        await session.commit()
    await client.get("/api/v1/users/me", headers=await staff.headers_for(Role.ADMIN))
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


async def test_every_expression_names_served_metrics_by_their_labels(
    project_root: Path, client: httpx.AsyncClient, sessionmaker, staff
) -> None:
    served = await served_labels(client, sessionmaker, staff)
    for expression, legend in expressions(dashboard(project_root)):
        names = set(METRIC_NAME.findall(expression))
        assert names, expression
        assert names <= set(served), f"{expression}: {names - set(served)} not served"
        available = set.union(*(served[name] for name in names)) | {"le"}
        grouped = {label.strip() for group in GROUPING.findall(expression) for label in group.split(",") if label.strip()}
        assert grouped <= available, f"{expression}: groups by {grouped - available}"
        for name, matchers in MATCHER.findall(expression):
            used = {matcher.split("=")[0].strip().rstrip("!~") for matcher in matchers.split(",")}
            assert used <= served[name], f"{expression}: {name} has no {used - served[name]}"
        assert set(LEGEND_LABEL.findall(legend)) <= grouped, f"{legend} names a label {expression} drops"


def test_the_watched_figures_each_have_a_panel_on_the_chosen_datasource(project_root: Path) -> None:
    board = dashboard(project_root)
    named = {name for expression, _ in expressions(board) for name in METRIC_NAME.findall(expression)}
    missing = {why for metric, why in WATCHED.items() if metric not in named}
    assert not missing, f"no panel shows {missing}"
    assert [variable["name"] for variable in board["templating"]["list"]] == ["datasource"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["description"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
