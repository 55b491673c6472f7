"""`cleanwindow drills ...`: a drill coordinator's campaign, from the file to the purge,
through the CLI against a really running server."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.client import drills
from app.domain.staff import Role
from tests.client.helpers import LiveServer, Officer
from tests.client.test_failures import assert_one_line_failure

CSV_HEADER = (
    "kind,label,source,scenario,state,seconds_to_acknowledge,seconds_to_assessment,"
    "routed_as_expected,acknowledgement_deadline,feedback_deadline,reporter_answered,"
    "confidentiality_kept,simulated_effects,codes_issued,codes_used,reports_filed,"
    "no_report_decisions,correct_decisions"
)
CODE = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$")


def api(server: LiveServer, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
        **kwargs,
    )


def inline_scenario(category: str, org_unit: str | None, *, report: bool = True) -> dict[str, Any]:
    return {
        "title": {"ko": f"{category} 모의 사례", "en": f"A mock {category} case"},
        "brief": {
            "ko": "가상건설 직원이 담당자에게 봉투를 건네는 것을 보았습니다.",
            "en": "You saw an employee of Gasang Construction hand the officer an envelope.",
        },
        "report": {
            "channel": "employee",
            "category": category,
            "org_unit": org_unit,
            "language": "ko",
            "content": {
                "summary": "담당자 금품 수수 의혹",
                "details": "허가 서류와 함께 봉투를 건넸습니다.",
            },
        },
        "expected": (
            {"report": True, "category": category, "org_unit": org_unit}
            if report
            else {"report": False, "category": None, "org_unit": None}
        ),
    }


def window() -> tuple[datetime, datetime]:
    """Started a few minutes ago, so the campaign is running from the start."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(minutes=5), now + timedelta(days=3)


@dataclass
class Created:
    id: str
    token: str
    stdout: str


@dataclass
class Drill:
    """A coordinator, a triage officer with a key (injected reports are sealed to them),
    and the scenario library's slugs."""

    server: LiveServer
    coordinator: Officer
    triage: Officer
    slugs: list[str]
    folder: Path

    def cli(self, *args: str, officer: Officer | None = None, input: str | None = None):
        return self.server.cli("drills", *args, token=(officer or self.coordinator).token, input=input)

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result.stdout

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return api(self.server, method, path, self.coordinator.token, **kwargs)

    def yaml_file(self, name: str, scenarios: list[dict[str, Any]], *, blind: bool = True) -> Path:
        """Written by hand, the way a coordinator would: times unquoted, Hangul as is."""
        starts_at, ends_at = window()
        path = self.folder / f"{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(
            f"# {name}\n"
            f"name: {name}\n"
            f"starts_at: {starts_at.isoformat()}\n"
            f"ends_at: {ends_at.isoformat().replace('+00:00', 'Z')}\n"
            f"blind: {'yes' if blind else 'no'}\n"
            + yaml.safe_dump({"scenarios": scenarios}, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        return path

    def json_file(self, name: str, scenarios: list[dict[str, Any]], *, blind: bool = False) -> Path:
        starts_at, ends_at = window()
        body = {
            "name": name,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "blind": blind,
            "scenarios": scenarios,
        }
        path = self.folder / f"{uuid.uuid4().hex[:8]}.campaign"  # JSON by content, not by name
        path.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    def create(self, path: Path) -> Created:
        result = self.cli("create", "--file", str(path))
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        assert "the injection token is shown only now" in result.stderr
        campaign_id = re.match(r"campaign (\S+)  ", result.stdout).group(1)
        token = re.search(r"^injection token: (\S+)$", result.stdout, re.MULTILINE).group(1)
        return Created(campaign_id, token, result.stdout)

    def campaign(self, *, scenarios: list[dict[str, Any]] | None = None) -> str:
        scenarios = scenarios or [
            inline_scenario("bribery", "construction_transport"),
            inline_scenario("hiring", "human_resources"),
            inline_scenario("other", None, report=False),
        ]
        return self.create(self.json_file("CLI drill", scenarios)).id


@pytest.fixture
async def drill(server: LiveServer, tmp_path: Path) -> Drill:
    triage = await server.staff(Role.TRIAGE)
    coordinator = await server.staff(Role.DRILL_COORDINATOR, with_key=False)
    library = api(server, "GET", "/drills/scenarios", coordinator.token)
    assert library.status_code == 200, library.text
    slugs = [item["slug"] for item in library.json()["items"]]
    return Drill(server, coordinator, triage, slugs, tmp_path)


def table_rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[1:]]


def test_scenarios_lists_the_library(drill: Drill) -> None:
    assert drill.slugs, "the server bundles no scenarios"
    listed = drill.ok("scenarios")
    assert listed.splitlines()[0].split() == ["#", "SLUG", "AREA", "REPORT?", "TITLE", "(KO)", "TITLE", "(EN)"]
    library = drill.api("GET", "/drills/scenarios").json()["items"]
    rows = table_rows(listed)
    assert [row[1] for row in rows] == drill.slugs
    for row, scenario in zip(rows, library, strict=True):
        assert row[2] == scenario["area"]
        assert row[3] == ("yes" if scenario["expected"]["report"] else "no")
    line = listed.splitlines()[1]
    assert library[0]["title"]["ko"] in line and line.endswith(library[0]["title"]["en"])

    as_json = json.loads(drill.ok("scenarios", "--json"))
    assert [item["slug"] for item in as_json["items"]] == drill.slugs
    assert as_json == drill.api("GET", "/drills/scenarios").json()


def test_create_from_yaml_and_from_json_then_list_and_show(drill: Drill) -> None:
    first, second = drill.slugs[0], drill.slugs[-1]
    from_yaml = drill.create(
        drill.yaml_file(
            "건설교통국 모의훈련",
            [{"library": first}, inline_scenario("bribery", "construction_transport")],
        )
    )
    lines = from_yaml.stdout.splitlines()
    assert lines[0] == f"campaign {from_yaml.id}  건설교통국 모의훈련"
    assert lines[1] == "state running (accepting reports)  blind yes"
    scenario_rows = [line.split() for line in lines[lines.index("SCENARIOS") + 2 :] if line.startswith("  ")]
    assert [row[:2] for row in scenario_rows] == [["1", first], ["2", "-"]]
    assert from_yaml.token and from_yaml.token in from_yaml.stdout.splitlines()[-1]

    result = drill.cli("create", "--json", "--file", str(drill.json_file("JSON drill", [{"library": second}])))
    assert result.exit_code == 0, result.stderr
    assert "the injection token is shown only now" in result.stderr
    from_json = json.loads(result.stdout)
    assert from_json["name"] == "JSON drill" and from_json["blind"] is False
    assert from_json["injection_token"]
    assert [(item["number"], item.get("library")) for item in from_json["scenarios"]] == [(1, second)]
    library = {item["slug"]: item for item in drill.api("GET", "/drills/scenarios").json()["items"]}
    assert from_json["scenarios"][0]["title"] == library[second]["title"]

    # Newest first, the way the API lists them.
    listed = drill.ok("list")
    assert listed.splitlines()[0].split()[:3] == ["ID", "NAME", "STATE"]
    assert [row[0] for row in table_rows(listed)] == [from_json["id"], from_yaml.id]
    assert json.loads(drill.ok("list", "--json")) == drill.api("GET", "/drills").json()

    shown = drill.ok("show", from_yaml.id)
    assert shown.splitlines()[:2] == lines[:2]
    assert "SCENARIOS" in shown and "injection token" not in shown
    assert json.loads(drill.ok("show", from_json["id"], "--json")) == drill.api(
        "GET", f"/drills/{from_json['id']}"
    ).json()


def test_inject_prints_a_receipt_that_opens_the_reporters_mailbox(drill: Drill) -> None:
    campaign_id = drill.campaign()
    result = drill.cli("inject", campaign_id)
    assert result.exit_code == 0, result.stderr
    receipt = result.stdout.strip()
    assert result.stdout == receipt + "\n"  # the receipt alone, for $(...)
    assert result.stderr.startswith(f"injected scenario 1 into campaign {campaign_id}, received on ")
    session = httpx.post(f"{drill.server.url}/api/v1/reporter/sessions", json={"receipt": receipt})
    assert session.status_code == 201, session.text

    # Without --scenario, the next in turn; with it, the one named.
    assert json.loads(drill.ok("inject", campaign_id, "--json"))["scenario"] == 2
    chosen = json.loads(drill.ok("inject", campaign_id, "--scenario", "3", "--json"))
    assert chosen["scenario"] == 3 and chosen["receipt"] != receipt

    triage_cases = api(drill.server, "GET", "/cases", drill.triage.token).json()["items"]
    assert len(triage_cases) == 3

    missing = drill.cli("inject", campaign_id, "--scenario", "9")
    assert_one_line_failure(missing)
    unknown = drill.cli("inject", str(uuid.uuid4()))
    assert_one_line_failure(unknown)


def test_participants_prints_n_distinct_codes_one_per_line(drill: Drill) -> None:
    campaign_id = drill.campaign()
    result = drill.cli("participants", campaign_id, "--count", "7", "--cohort", "welfare")
    assert result.exit_code == 0, result.stderr
    codes = result.stdout.splitlines()
    assert len(codes) == 7 == len(set(codes))
    assert all(code.strip() == code and code for code in codes)
    assert "issued 7 participant codes for cohort welfare" in result.stderr
    opened = httpx.post(f"{drill.server.url}/api/v1/participant/scenario", json={"code": codes[0]})
    assert opened.status_code == 200, opened.text

    as_json = json.loads(drill.ok("participants", campaign_id, "--count", "2", "--json"))
    assert as_json["cohort"] is None and len(set(as_json["codes"])) == 2
    assert not set(as_json["codes"]) & set(codes)
    assert json.loads(drill.ok("show", campaign_id, "--json"))["codes_issued"] == 9

    too_many = drill.cli("participants", campaign_id, "--count", "1001")
    assert too_many.exit_code == 2


def test_scorecard_as_a_table_as_json_and_as_the_servers_csv(drill: Drill) -> None:
    campaign_id = drill.campaign()
    drill.ok("inject", campaign_id)
    drill.ok("inject", campaign_id)
    drill.ok("participants", campaign_id, "--count", "6", "--cohort", "welfare")

    expected = drill.api("GET", f"/drills/{campaign_id}/scorecard").json()
    as_json = json.loads(drill.ok("scorecard", campaign_id, "--json"))
    assert as_json["totals"] == expected["totals"]
    assert as_json["cases"] == expected["cases"]
    assert as_json["cohorts"] == expected["cohorts"]
    assert as_json["totals"]["drill_cases"] == as_json["totals"]["injected"] == 2

    text = drill.ok("scorecard", campaign_id)
    lines = text.splitlines()
    assert lines[0] == f"scorecard of campaign {campaign_id}  CLI drill"
    assert "drill cases 2 (injected 2, participant reports 0)" in text
    cases = lines[lines.index("CASES") + 1 :]
    assert cases[0].split()[:4] == ["REF", "SOURCE", "SCENARIO", "STATE"]
    assert [row.split()[1:3] for row in cases[1:3]] == [
        [case["source"], str(case["scenario"])] for case in expected["cases"]
    ]
    assert any(line.startswith("COHORTS") for line in lines)

    csv = drill.cli("scorecard", campaign_id, "--csv")
    assert csv.exit_code == 0, csv.stderr
    served = drill.api(
        "GET", f"/drills/{campaign_id}/scorecard", headers={"Accept": "text/csv"}
    ).text
    assert csv.stdout.splitlines() == served.splitlines()  # row for row (line ends may differ)
    assert csv.stdout.splitlines()[0] == CSV_HEADER


def test_pause_refuses_injections_until_resume_and_close_purges_with_yes(
    drill: Drill, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = drill.campaign()
    drill.ok("inject", campaign_id)

    assert drill.ok("pause", campaign_id) == f"campaign {campaign_id} is now paused\n"
    assert_one_line_failure(drill.cli("inject", campaign_id))
    assert json.loads(drill.ok("show", campaign_id, "--json"))["state"] == "paused"
    assert json.loads(drill.ok("resume", campaign_id, "--json"))["state"] == "running"
    drill.ok("inject", campaign_id)

    # No terminal to ask on (CliRunner's standard input is not one) and no --yes: nothing happens.
    refused = drill.cli("close", campaign_id)
    assert_one_line_failure(refused, "pass --yes", exit_code=2)
    assert json.loads(drill.ok("show", campaign_id, "--json"))["drill_cases"] == 2

    # At a terminal it asks, naming the campaign; anything but yes closes nothing.
    monkeypatch.setattr(drills, "stdin_is_a_terminal", lambda: True)
    declined = drill.cli("close", campaign_id, input="n\n")
    assert declined.exit_code == 1  # (CliRunner echoes the typed answer to stdout)
    assert "Close campaign 'CLI drill' (2 drill cases)? This freezes the scorecard" in declined.stderr
    assert declined.stderr.endswith(f"cleanwindow: campaign {campaign_id} was not closed\n")
    assert json.loads(drill.ok("show", campaign_id, "--json"))["state"] == "running"
    monkeypatch.undo()

    closed = drill.ok("close", campaign_id, "--yes")
    assert closed == f"campaign {campaign_id} is now closed; 2 drill cases purged\n"
    campaign = json.loads(drill.ok("show", campaign_id, "--json"))
    assert (campaign["state"], campaign["drill_cases"], campaign["purged_cases"]) == ("closed", 0, 2)
    assert api(drill.server, "GET", "/cases", drill.triage.token).json()["items"] == []
    assert json.loads(drill.ok("scorecard", campaign_id, "--json"))["frozen"] is True

    # A closed campaign allows nothing: the server's refusal, in one line.
    assert_one_line_failure(drill.cli("resume", campaign_id))
    assert_one_line_failure(drill.cli("close", campaign_id, "--yes"))


def test_a_triage_officer_is_refused_in_one_line(drill: Drill) -> None:
    campaign_id = drill.campaign()
    for args in (
        ["list"],
        ["scenarios"],
        ["show", campaign_id],
        ["inject", campaign_id],
        ["participants", campaign_id, "--count", "1"],
        ["scorecard", campaign_id, "--csv"],
        ["pause", campaign_id],
        ["create", "--file", str(drill.json_file("not mine", [{"library": drill.slugs[0]}]))],
    ):
        result = drill.cli(*args, officer=drill.triage)
        line = assert_one_line_failure(result)
        assert line == "cleanwindow: This needs one of the roles: drill_coordinator.", args


def test_a_bad_campaign_file_is_one_line(drill: Drill) -> None:
    broken = drill.folder / "broken.yaml"
    broken.write_text("name: x\nscenarios: [\n", encoding="utf-8")
    assert_one_line_failure(drill.cli("create", "--file", str(broken)), "is not valid YAML", exit_code=2)
    absent = drill.folder / "absent.yaml"
    assert_one_line_failure(drill.cli("create", "--file", str(absent)), "does not exist", exit_code=2)
    # Well-formed, but not a campaign the server takes: its problem detail, in one line.
    no_scenarios = drill.folder / "empty.yaml"
    no_scenarios.write_text("name: x\nstarts_at: 2026-12-01T00:00:00Z\nblind: true\nscenarios: []\n")
    line = assert_one_line_failure(drill.cli("create", "--file", str(no_scenarios)))
    assert "ends_at" in line and "scenarios" in line
    assert drill.api("GET", "/drills").json()["items"] == []
