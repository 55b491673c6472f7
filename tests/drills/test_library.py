"""The bundled scenario library: complete, bilingual, fictitious, and valid as reports."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from app.domain.intake import DEFAULT_CATEGORIES, DEFAULT_ORG_UNITS
from app.drills.library import (
    AREAS,
    ScenarioLibraryError,
    library_scenario,
    library_scenarios,
    parse_library,
)
from app.intake.schemas import SUMMARY_MAX, ReportSubmission

SCENARIOS = library_scenarios()
CATEGORIES = {option.code for option in DEFAULT_CATEGORIES}
ORG_UNITS = {option.code for option in DEFAULT_ORG_UNITS}
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Real firms a writer might reach for. Latin ones as whole words: "SK" is inside "ASK".
REAL_NAMES = re.compile(r"삼성|현대|롯데|\bLG\b|\bSK\b|\bSamsung\b|\bHyundai\b|\bLotte\b")


each_scenario = pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[scenario["slug"] for scenario in SCENARIOS]
)


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_the_library_is_large_enough_and_covers_every_area() -> None:
    areas = [scenario["area"] for scenario in SCENARIOS]
    assert len(SCENARIOS) >= 12
    assert areas.count("decoy") >= 2
    assert set(areas) == set(AREAS)


def test_slugs_are_unique_and_found_by_lookup() -> None:
    slugs = [scenario["slug"] for scenario in SCENARIOS]
    assert len(slugs) == len(set(slugs))
    for slug in slugs:
        assert library_scenario(slug)["slug"] == slug
    assert library_scenario("no-such-scenario") is None


def test_callers_get_copies() -> None:
    first = library_scenarios()[0]
    first["title"]["ko"] = "changed"
    library_scenario(first["slug"])["report"]["content"]["summary"] = "changed"
    again = library_scenario(first["slug"])
    assert again["title"]["ko"] != "changed"
    assert again["report"]["content"]["summary"] != "changed"


@each_scenario
def test_title_and_brief_are_in_both_languages_within_limits(scenario: dict) -> None:
    for field, limit in (("title", 200), ("brief", 5000)):
        assert set(scenario[field]) == {"ko", "en"}
        assert HANGUL.search(scenario[field]["ko"]), f"{field}.ko has no Korean"
        assert not HANGUL.search(scenario[field]["en"]), f"{field}.en has Korean in it"
        assert all(0 < len(text.strip()) <= limit for text in scenario[field].values())


@each_scenario
def test_the_report_is_a_valid_submission_in_its_language(scenario: dict) -> None:
    report = scenario["report"]
    submission = ReportSubmission.model_validate(report)
    assert submission.pow is None and submission.contact is None
    assert len(report["content"]["summary"]) <= SUMMARY_MAX
    assert report["category"] in CATEGORIES
    assert report["org_unit"] in ORG_UNITS
    written_in_korean = [
        bool(HANGUL.search(report["content"][field])) for field in ("summary", "details")
    ]
    assert written_in_korean == [report["language"] == "ko"] * 2


@each_scenario
def test_expected_routing_matches_the_report_unless_a_decoy(scenario: dict) -> None:
    expected, report = scenario["expected"], scenario["report"]
    assert set(expected) == {"report", "category", "org_unit"}
    if scenario["area"] == "decoy":
        assert expected == {"report": False, "category": None, "org_unit": None}
    else:
        assert expected["report"] is True
        assert expected["category"] == report["category"]
        assert expected["org_unit"] == report["org_unit"]


@each_scenario
def test_names_no_real_company(scenario: dict) -> None:
    found = [match for text in strings(scenario) for match in REAL_NAMES.findall(text)]
    assert not found


def test_the_deny_list_catches_real_names_but_not_words_that_contain_them() -> None:
    assert REAL_NAMES.search("롯데백화점 상품권") and REAL_NAMES.search("an SK subsidiary")
    assert not REAL_NAMES.search("She asked for a task list")


VALID = {
    "slug": "a-scenario",
    "area": "hiring",
    "title": {"ko": "제목", "en": "Title"},
    "brief": {"ko": "설명", "en": "Brief"},
    "report": {
        "channel": "employee",
        "category": "hiring",
        "language": "ko",
        "content": {"summary": "요약", "details": "내용"},
    },
    "expected": {"report": True, "category": "hiring", "org_unit": None},
}


def with_changes(**changes: object) -> dict:
    return {**VALID, **changes}


def test_a_well_formed_file_parses() -> None:
    assert parse_library(yaml.safe_dump([VALID, with_changes(slug="another")])) == (
        VALID,
        with_changes(slug="another"),
    )


@pytest.mark.parametrize(
    ("scenarios", "complaint"),
    [
        ([VALID, VALID], "duplicate slug"),
        ([with_changes(brief={"ko": "설명"})], "brief needs both ko and en"),
        ([with_changes(title={"ko": "제목", "en": " "})], "title needs both ko and en"),
        ([with_changes(area="gossip")], "unknown area"),
        ([with_changes(slug="Not A Slug")], "is not [a-z0-9-]"),
        ([{k: v for k, v in VALID.items() if k != "expected"}], "needs exactly the fields"),
        ([], "non-empty list"),
    ],
)
def test_a_malformed_file_fails_loudly(scenarios: list, complaint: str) -> None:
    with pytest.raises(ScenarioLibraryError, match=re.escape(complaint)):
        parse_library(yaml.safe_dump(scenarios))
