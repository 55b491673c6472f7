"""The pure parts of `cleanwindow drills`: reading a campaign file, the tables and texts it
prints, and what it refuses before it talks to any server. No server, no database."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.client import render
from app.client.drills import read_campaign_file
from app.client.errors import ClientError
from app.client.models import Campaign, Injection, IssuedCodes, ScenarioLibrary, Scorecard
from tests.client.helpers import free_port
from tests.client.test_failures import assert_one_line_failure

CAMPAIGN_ID = "7d6f1f7e-2a51-4a8e-9a51-0c2a6f1d0b11"

YAML_CAMPAIGN = """\
# A drill for the construction office.
name: 건설교통국 훈련 (spring)
starts_at: 2026-12-01T09:00:00+09:00
ends_at: "2026-12-31T18:00:00Z"
blind: yes
scenarios:
  - library: gift-for-permit
  - title: {ko: 하도급 담합, en: Subcontract rigging}
    brief: {ko: 입찰 전에 이미 업체가 정해져 있었습니다., en: The winner was picked before the bid.}
    report:
      channel: employee
      category: contracts_permits
      org_unit: construction_transport
      language: ko
      content: {summary: 담합 의혹, details: 입찰 전에 낙찰 업체가 정해졌습니다.}
    expected: {report: true, category: contracts_permits, org_unit: null}
"""

CAMPAIGN = {
    "id": CAMPAIGN_ID,
    "name": "건설교통국 훈련",
    "starts_at": "2026-12-01T00:00:00Z",
    "ends_at": "2026-12-31T18:00:00Z",
    "blind": True,
    "state": "running",
    "accepting_reports": True,
    "allowed_actions": ["pause", "close"],
    "version": 3,
    "created_at": "2026-11-28T06:28:00Z",
    "closed_at": None,
    "scenarios": [
        {
            "number": 1,
            "library": "gift-for-permit",
            "title": {"ko": "인허가 대가 선물", "en": "A gift for a permit"},
            "brief": {"ko": "...", "en": "..."},
            "report": {"channel": "employee", "category": "bribery"},
            "expected": {
                "report": True,
                "category": "bribery",
                "org_unit": "construction_transport",
            },
        },
        {
            "number": 2,
            "title": {"ko": "평범한 회식", "en": "An ordinary team dinner"},
            "brief": {"ko": "...", "en": "..."},
            "report": {"channel": "employee", "category": "other"},
            "expected": {"report": False, "category": None, "org_unit": None},
        },
    ],
    "codes_issued": 10,
    "drill_cases": 3,
    "purged_cases": None,
}

SCORECARD = {
    "campaign": {"id": CAMPAIGN_ID, "name": "건설교통국 훈련", "state": "running", "blind": True},
    "frozen": False,
    "computed_at": "2026-12-02T01:00:00Z",
    "cohort_threshold": 5,
    "totals": {
        "drill_cases": 3,
        "injected": 2,
        "participant_reports": 1,
        "acknowledged": 2,
        "median_seconds_to_acknowledge": 600,
        "median_seconds_to_assessment": 90061,
        "routed_as_expected": 2,
        "routing_scored": 3,
        "acknowledgement_deadline": {"met": 2, "late": 0, "missed": 0, "pending": 1},
        "feedback_deadline": {"met": 0, "late": 0, "missed": 0, "pending": 3},
        "reporter_answered": 1,
        "confidentiality_kept": 3,
        "simulated_effects": 0,
    },
    "cases": [
        {
            "ref": 1,
            "source": "injection",
            "scenario": 1,
            "state": "assessing",
            "seconds_to_acknowledge": 600,
            "seconds_to_assessment": 900,
            "routed_as_expected": True,
            "acknowledgement_deadline": "met",
            "feedback_deadline": "pending",
            "reporter_answered": False,
            "confidentiality_kept": True,
            "simulated_effects": 0,
        },
        {
            "ref": 2,
            "source": "participant",
            "scenario": 2,
            "state": "received",
            "seconds_to_acknowledge": None,
            "seconds_to_assessment": None,
            "routed_as_expected": None,
            "acknowledgement_deadline": "pending",
            "feedback_deadline": "pending",
            "reporter_answered": False,
            "confidentiality_kept": True,
            "simulated_effects": 0,
        },
    ],
    "participants": {
        "codes_issued": 10,
        "codes_used": 3,
        "reports_filed": 1,
        "no_report_decisions": 1,
        "correct_decisions": 2,
    },
    "cohorts": [
        {
            "cohort": "other",
            "codes_issued": 10,
            "codes_used": 3,
            "reports_filed": 1,
            "no_report_decisions": 1,
            "correct_decisions": 2,
        },
    ],
}


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- campaign files ---------------------------------------------------------------------


def test_a_yaml_campaign_is_read_with_its_times_as_iso_text(tmp_path: Path) -> None:
    body = read_campaign_file(write(tmp_path, "drill.yaml", YAML_CAMPAIGN))
    assert body["name"] == "건설교통국 훈련 (spring)"
    # Unquoted, YAML reads a timestamp; it goes to the server as the text it was.
    assert body["starts_at"] == "2026-12-01T09:00:00+09:00"
    assert body["ends_at"] == "2026-12-31T18:00:00Z"
    assert body["blind"] is True
    assert body["scenarios"][0] == {"library": "gift-for-permit"}
    assert body["scenarios"][1]["expected"] == {
        "report": True,
        "category": "contracts_permits",
        "org_unit": None,
    }
    json.dumps(body)  # nothing YAML-specific is left


def test_a_json_campaign_is_read_as_json_whatever_its_name(tmp_path: Path) -> None:
    campaign = {"name": "x", "starts_at": "2026-12-01T00:00:00Z", "blind": False, "scenarios": []}
    # A byte order mark, as some Windows editors write, is not part of the JSON.
    path = write(tmp_path, "drill.txt", b"\xef\xbb\xbf  \n" + json.dumps(campaign).encode())
    assert read_campaign_file(path) == campaign


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "broken.json",
            '{"name": "x",\n "blind": tru}',
            "is not valid JSON: Expecting value (line 2, column 11)",
        ),
        ("broken.yaml", "name: x\nscenarios: [\n  - a\n", "is not valid YAML"),
        ("tabs.yaml", "name: x\n\tblind: true\n", "is not valid YAML"),
        ("list.yaml", "- name: x\n", "does not hold a campaign"),
        ("scalar.yaml", "just some words\n", "does not hold a campaign"),
        ("empty.yaml", "", "does not hold a campaign"),
        ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ],
)
def test_an_invalid_campaign_file_is_one_error_with_exit_code_2(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(ClientError) as raised:
        read_campaign_file(path)
    assert raised.value.exit_code == 2
    assert str(path) in raised.value.message and message in raised.value.message
    assert "\n" not in raised.value.message


def test_a_missing_or_unreadable_campaign_file_is_one_error(tmp_path: Path) -> None:
    for path, message in (
        (tmp_path / "absent.yaml", "does not exist"),
        (tmp_path, "cannot read campaign file"),
    ):
        with pytest.raises(ClientError) as raised:
            read_campaign_file(path)
        assert raised.value.exit_code == 2 and message in raised.value.message


def test_create_refuses_a_bad_file_before_it_needs_a_token_or_a_server(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", "{")
    result = CliRunner().invoke(
        cli,
        ["drills", "create", "--file", str(path)],
        env={"CLEANWINDOW_URL": f"http://127.0.0.1:{free_port()}", "CLEANWINDOW_TOKEN": None},
    )
    assert_one_line_failure(result, f"campaign file {path} is not valid JSON", exit_code=2)


# --- refusals before the server ---------------------------------------------------------


def offline(*args: str, token: str | None = "t") -> object:
    env = {"CLEANWINDOW_URL": f"http://127.0.0.1:{free_port()}", "CLEANWINDOW_TOKEN": token}
    return CliRunner().invoke(cli, ["drills", *args], env=env)


def test_close_without_yes_and_without_a_terminal_refuses_and_says_to_pass_yes() -> None:
    result = offline("close", CAMPAIGN_ID)
    assert_one_line_failure(
        result, "purges the campaign's drill cases for good", "pass --yes", exit_code=2
    )


def test_scorecard_takes_csv_or_json_not_both() -> None:
    assert_one_line_failure(
        offline("scorecard", CAMPAIGN_ID, "--csv", "--json"), "--csv and --json", exit_code=2
    )


def test_no_token_and_no_server_are_one_line_like_cases() -> None:
    assert_one_line_failure(
        offline("list", token=None), "no token: set CLEANWINDOW_TOKEN", exit_code=2
    )
    assert_one_line_failure(
        offline("inject", CAMPAIGN_ID), "cannot reach the server at http://127.0.0.1:"
    )


# --- what is printed --------------------------------------------------------------------


def test_the_campaign_text_shows_state_counts_and_numbered_scenarios() -> None:
    text = render.campaign_text(Campaign.model_validate(CAMPAIGN))
    lines = text.splitlines()
    assert lines[0] == f"campaign {CAMPAIGN_ID}  건설교통국 훈련"
    assert lines[1] == "state running (accepting reports)  blind yes"
    assert lines[2] == "runs 2026-12-01 00:00 to 2026-12-31 18:00 UTC  created 2026-11-28 06:28 UTC"
    assert lines[3] == "codes issued 10  drill cases 3"
    assert lines[4] == "you may: pause, close"
    header, first, second = lines[7:10]
    assert header.split() == [
        "#",
        "FROM",
        "LIBRARY",
        "REPORT?",
        "CATEGORY",
        "UNIT",
        "TITLE",
        "(KO)",
        "TITLE",
        "(EN)",
    ]
    assert first.split()[:5] == ["1", "gift-for-permit", "yes", "bribery", "construction_transport"]
    assert second.split()[:5] == ["2", "-", "no", "-", "-"]
    assert first.endswith("A gift for a permit") and "인허가 대가 선물" in first
    # Hangul is two columns wide: the English titles still start in one column.
    assert render.display_width(first[: first.index("A gift")]) == render.display_width(
        second[: second.index("An ordinary")]
    )


def test_a_closed_campaign_says_when_and_how_many_cases_were_purged() -> None:
    closed = Campaign.model_validate(
        CAMPAIGN
        | {
            "state": "closed",
            "accepting_reports": False,
            "allowed_actions": [],
            "closed_at": "2027-01-02T03:04:05+09:00",
            "drill_cases": 0,
            "purged_cases": 3,
        }
    )
    lines = render.campaign_text(closed).splitlines()
    assert lines[1] == "state closed (not accepting reports)  blind yes"
    assert lines[2].endswith("closed 2027-01-01 18:04 UTC")  # shown in UTC, whatever the offset
    assert lines[3] == "codes issued 10  drill cases 0  purged at close 3"
    assert lines[4] == "you may: nothing now"


def test_campaigns_table_and_library_table() -> None:
    table = render.campaigns_table([Campaign.model_validate(CAMPAIGN)])
    header, row = table.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATE"]
    assert row.split()[0] == CAMPAIGN_ID and row.split()[-4:] == ["yes", "2", "10", "3"]
    assert render.campaigns_table([]) == "no campaigns"

    library = ScenarioLibrary.model_validate(
        {
            "items": [
                {
                    "slug": "gift-for-permit",
                    "area": "solicitation_gifts",
                    "title": {"ko": "인허가 대가 선물", "en": "A gift for a permit"},
                    "expected": {"report": True, "category": "bribery"},
                },
                {
                    "slug": "team-dinner",
                    "area": "decoy",
                    "title": {"ko": "평범한 회식", "en": "An ordinary team dinner"},
                    "expected": {"report": False},
                },
            ]
        }
    )
    header, *rows = render.library_table(library.items).splitlines()
    assert header.split() == ["#", "SLUG", "AREA", "REPORT?", "TITLE", "(KO)", "TITLE", "(EN)"]
    assert [row.split()[:4] for row in rows] == [
        ["1", "gift-for-permit", "solicitation_gifts", "yes"],
        ["2", "team-dinner", "decoy", "no"],
    ]
    assert rows[1].endswith("An ordinary team dinner")


def test_the_scorecard_text_has_totals_cases_and_cohorts() -> None:
    text = render.scorecard_text(Scorecard.model_validate(SCORECARD))
    assert text.startswith(f"scorecard of campaign {CAMPAIGN_ID}  건설교통국 훈련\n")
    assert "state running  blind yes  as of 2026-12-02 01:00 UTC (final at close)" in text
    assert "drill cases 3 (injected 2, participant reports 1)" in text
    assert "median time to acknowledge 10m 00s  median time to assessment 1d 01h" in text
    assert "routed as expected 2 of 3" in text
    lines = text.splitlines()
    cases = lines[lines.index("CASES") + 1 :]
    assert cases[0].split()[:4] == ["REF", "SOURCE", "SCENARIO", "STATE"]
    assert cases[1].split() == [
        "1",
        "injection",
        "1",
        "assessing",
        "10m",
        "00s",
        "15m",
        "00s",
        "yes",
        "met",
        "pending",
        "no",
        "yes",
        "0",
    ]
    assert cases[2].split() == [
        "2",
        "participant",
        "2",
        "received",
        "-",
        "-",
        "-",
        "pending",
        "pending",
        "no",
        "yes",
        "0",
    ]
    deadlines = [
        line.split() for line in lines if line.strip().startswith(("acknowledgement ", "feedback "))
    ]
    assert deadlines == [["acknowledgement", "2", "0", "0", "1"], ["feedback", "0", "0", "0", "3"]]
    cohort_rows = lines[next(i for i, line in enumerate(lines) if line.startswith("COHORTS")) + 1 :]
    assert [row.split() for row in cohort_rows] == [
        ["COHORT", "CODES", "USED", "REPORTS", "NO", "REPORT", "CORRECT"],
        ["other", "10", "3", "1", "1", "2"],
    ]

    frozen = Scorecard.model_validate(SCORECARD | {"frozen": True, "cases": [], "cohorts": []})
    text = render.scorecard_text(frozen)
    assert "frozen at close, computed 2026-12-02 01:00 UTC" in text
    assert text.count("(none)") == 2


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0s"),
        (45.4, "45s"),
        (600, "10m 00s"),
        (3 * 3600 + 4 * 60 + 59, "3h 04m"),
        (2 * 86400 + 5 * 3600, "2d 05h"),
    ],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert render.duration(seconds) == shown


def test_what_is_shown_once_parses() -> None:
    assert Injection.model_validate(
        {"receipt": "R", "received_on": "2026-12-01", "scenario": 2}
    ).received_on == date(2026, 12, 1)
    assert IssuedCodes.model_validate({"cohort": None, "codes": ["A", "B"]}).codes == ["A", "B"]
    assert uuid.UUID(CAMPAIGN_ID)
