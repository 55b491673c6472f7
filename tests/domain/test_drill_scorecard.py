"""The drill scorecard: timings, routing, row order, participant counts, cohorts and the CSV.

Expected key sets and CSV columns are written out here from docs (the drills spec) rather
than imported, so that a test does not agree with a mistake in the module."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.drill_scorecard import (
    CaseFacts,
    CodeFacts,
    Decision,
    Expected,
    Source,
    build_scorecard,
    deadline_outcome,
    scorecard_csv,
)

RECEIVED = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
CAMPAIGN = {
    "id": "3f0c1c9e-0000-4000-8000-000000000001",
    "name": "Spring drill",
    "state": "running",
    "blind": True,
}
EXPECTED = {
    1: Expected(report=True, category="bribery", org_unit="construction_transport"),
    2: Expected(report=True, category="hiring", org_unit=None),
    3: Expected(report=False, category=None, org_unit=None),  # a decoy
}


def _case(order_key: str = "case-a", **changes: object) -> CaseFacts:
    case = CaseFacts(
        order_key=order_key,
        source=Source.INJECTION,
        scenario=1,
        state="assessing",
        received_at=RECEIVED,
        acknowledged_at=RECEIVED + timedelta(seconds=600),
        assessment_started_at=RECEIVED + timedelta(seconds=900),
        category="bribery",
        org_unit="construction_transport",
        acknowledgement="met",
        feedback="pending",
        reporter_answered=False,
        confidentiality_kept=True,
        simulated_effects=0,
    )
    return replace(case, **changes)


def _code(
    cohort: str | None = None,
    scenario: int = 1,
    used: bool = False,
    decision: Decision | None = None,
):
    return CodeFacts(cohort=cohort, scenario=scenario, used=used, decision=decision)


def _scorecard(cases=(), codes=(), threshold: int = 1, **changes) -> dict:
    arguments = {
        "campaign": CAMPAIGN,
        "cases": list(cases),
        "codes": list(codes),
        "expected": EXPECTED,
        "cohort_threshold": threshold,
        "computed_at": datetime(2025, 3, 5, 12, 30, tzinfo=UTC),
        "frozen": False,
    }
    return build_scorecard(**(arguments | changes))


def _cohort_sizes(scorecard: dict) -> list[tuple[str, int]]:
    return [(row["cohort"], row["codes_issued"]) for row in scorecard["cohorts"]]


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- Timings ---------------------------------------------------------------------------


def test_seconds_are_whole_seconds_from_received():
    case = _case(
        acknowledged_at=RECEIVED + timedelta(seconds=600, milliseconds=900),
        assessment_started_at=RECEIVED + timedelta(hours=1, seconds=5),
    )
    [row] = _scorecard([case])["cases"]
    assert (row["seconds_to_acknowledge"], row["seconds_to_assessment"]) == (600, 3605)


def test_a_time_before_received_counts_as_zero_seconds():
    # A received time can trail the acknowledgement (a participant's report is timed from
    # its hour); the clamp holds for every row.
    case = _case(
        source=Source.INJECTION,
        received_at=RECEIVED,
        acknowledged_at=RECEIVED - timedelta(minutes=20),
        assessment_started_at=RECEIVED - timedelta(seconds=1),
    )
    [row] = _scorecard([case])["cases"]
    assert (row["seconds_to_acknowledge"], row["seconds_to_assessment"]) == (0, 0)


def test_a_step_not_taken_has_no_seconds_and_is_not_counted():
    cases = [
        _case("a"),
        _case("b", acknowledged_at=None, assessment_started_at=None, state="received"),
    ]
    scorecard = _scorecard(cases)
    assert [row["seconds_to_acknowledge"] for row in scorecard["cases"]] == [600, None]
    assert [row["seconds_to_assessment"] for row in scorecard["cases"]] == [900, None]
    assert scorecard["totals"]["acknowledged"] == 1


def test_medians_are_over_the_cases_that_have_the_value():
    acknowledge_after = {"a": 6000, "b": 60, "c": 600, "d": None}
    assess_after = {"a": 100, "b": 200, "c": 1000, "d": 400}
    cases = [
        _case(
            key,
            acknowledged_at=None
            if acknowledge_after[key] is None
            else RECEIVED + timedelta(seconds=acknowledge_after[key]),
            assessment_started_at=RECEIVED + timedelta(seconds=assess_after[key]),
        )
        for key in "abcd"
    ]
    totals = _scorecard(cases)["totals"]
    assert totals["median_seconds_to_acknowledge"] == 600  # of 60, 600, 6000
    assert totals["median_seconds_to_assessment"] == 300  # (200 + 400) / 2
    assert isinstance(totals["median_seconds_to_assessment"], int)


def test_medians_round_to_whole_seconds():
    cases = [_case("a"), _case("b", acknowledged_at=RECEIVED + timedelta(seconds=603))]
    assert _scorecard(cases)["totals"]["median_seconds_to_acknowledge"] == 602  # 601.5


def test_medians_are_none_without_values():
    unhandled = _case(acknowledged_at=None, assessment_started_at=None)
    for cases in ([], [unhandled]):
        totals = _scorecard(cases)["totals"]
        assert totals["median_seconds_to_acknowledge"] is None
        assert totals["median_seconds_to_assessment"] is None


# --- Routing ---------------------------------------------------------------------------


def test_routing_compares_category_and_the_expected_unit():
    cases = [
        _case("a"),
        _case("b", category="embezzlement"),
        _case("c", org_unit="welfare"),
        _case("d", org_unit=None),
        _case("e", scenario=2, category="hiring", org_unit="welfare"),  # any unit is fine
        _case("f", scenario=2, category="hiring", org_unit=None),
        _case("g", scenario=2, category="bribery", org_unit=None),
    ]
    scorecard = _scorecard(cases)
    assert [row["routed_as_expected"] for row in scorecard["cases"]] == [
        True,
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert (scorecard["totals"]["routed_as_expected"], scorecard["totals"]["routing_scored"]) == (
        3,
        7,
    )


def test_a_decoy_is_not_scored_for_routing():
    cases = [_case("a"), _case("b", scenario=3, category="other", org_unit=None)]
    scorecard = _scorecard(cases)
    assert [row["routed_as_expected"] for row in scorecard["cases"]] == [True, None]
    assert (scorecard["totals"]["routed_as_expected"], scorecard["totals"]["routing_scored"]) == (
        1,
        1,
    )


def test_a_decoy_routed_anywhere_is_still_not_scored():
    # Even a decoy that happens to match a real scenario's routing scores nothing.
    [row] = _scorecard([_case(scenario=3)])["cases"]
    assert row["routed_as_expected"] is None


def test_a_scenario_without_expected_handling_is_refused():
    with pytest.raises(ValueError, match="scenario"):
        _scorecard([_case(scenario=9)])
    with pytest.raises(ValueError, match="scenario"):
        _scorecard(codes=[_code(scenario=9)])


# --- Case rows: order, numbering, nothing that identifies a case -----------------------


def test_rows_are_ordered_by_source_scenario_and_key_never_by_time():
    # Received times run against the expected order, so an order by time would reverse it.
    wanted = [
        (Source.INJECTION, 1, "k1"),
        (Source.INJECTION, 1, "k2"),
        (Source.INJECTION, 2, "k0"),
        (Source.INJECTION, 3, "a0"),
        (Source.INJECTION, 3, "a9"),
    ]
    cases = [
        _case(
            key,
            source=source,
            scenario=scenario,
            state=f"{source}-{scenario}-{key}",
            received_at=RECEIVED - timedelta(hours=position),
        )
        for position, (source, scenario, key) in enumerate(wanted)
    ]
    for seed in range(5):
        shuffled = cases[:]
        random.Random(seed).shuffle(shuffled)
        rows = _scorecard(shuffled)["cases"]
        assert [row["state"] for row in rows] == [
            f"{source}-{scenario}-{key}" for source, scenario, key in wanted
        ]
        assert [row["ref"] for row in rows] == [1, 2, 3, 4, 5]


def test_case_rows_carry_no_id_and_no_time():
    cases = [
        _case("3f0c1c9e-aaaa-4bbb-8ccc-d0d0d0d0d0d1"),
        _case("3f0c1c9e-aaaa-4bbb-8ccc-d0d0d0d0d0d2", scenario=2),
    ]
    scorecard = _scorecard(cases)
    rows_json = json.dumps(scorecard["cases"])
    assert "d0d0d0d0d0d1" not in rows_json and "d0d0d0d0d0d2" not in rows_json
    assert not re.search(r"\d{4}-\d{2}-\d{2}", rows_json)  # no date, no timestamp
    assert "d0d0d0d0d0d" not in json.dumps(scorecard)
    assert "d0d0d0d0d0d" not in scorecard_csv(scorecard)


# --- The JSON's shape ------------------------------------------------------------------

SPEC_KEYS = [
    "campaign",
    "frozen",
    "computed_at",
    "cohort_threshold",
    "totals",
    "cases",
    "participants",
    "cohorts",
]
SPEC_TOTALS = [
    "drill_cases",
    "injected",
    "participant_reports",
    "acknowledged",
    "median_seconds_to_acknowledge",
    "median_seconds_to_assessment",
    "routed_as_expected",
    "routing_scored",
    "acknowledgement_deadline",
    "feedback_deadline",
    "reporter_answered",
    "confidentiality_kept",
    "simulated_effects",
    "participant_handling_counted",
]
SPEC_CASE = [
    "ref",
    "source",
    "scenario",
    "state",
    "seconds_to_acknowledge",
    "seconds_to_assessment",
    "routed_as_expected",
    "acknowledgement_deadline",
    "feedback_deadline",
    "reporter_answered",
    "confidentiality_kept",
    "simulated_effects",
]
SPEC_PARTICIPANTS = [
    "codes_issued",
    "codes_used",
    "reports_filed",
    "no_report_decisions",
    "correct_decisions",
]


def test_the_json_has_the_spec_keys_and_survives_a_round_trip():
    scorecard = _scorecard([_case()], [_code("a", decision=Decision.REPORTED)], frozen=True)
    assert list(scorecard) == SPEC_KEYS
    assert list(scorecard["totals"]) == SPEC_TOTALS
    assert list(scorecard["cases"][0]) == SPEC_CASE
    assert list(scorecard["participants"]) == SPEC_PARTICIPANTS
    assert list(scorecard["cohorts"][0]) == ["cohort", *SPEC_PARTICIPANTS]
    for deadline in ("acknowledgement_deadline", "feedback_deadline"):
        assert list(scorecard["totals"][deadline]) == ["met", "late", "missed", "pending"]
    assert json.loads(json.dumps(scorecard)) == scorecard
    assert (scorecard["frozen"], scorecard["cohort_threshold"], scorecard["campaign"]) == (
        True,
        1,
        CAMPAIGN,
    )
    assert type(scorecard["cases"][0]["source"]) is str


def test_computed_at_is_utc_with_a_z():
    seoul = timezone(timedelta(hours=9))
    assert (
        _scorecard(computed_at=datetime(2025, 3, 5, 21, 30, tzinfo=seoul))["computed_at"]
        == "2025-03-05T12:30:00Z"
    )
    with pytest.raises(ValueError):
        _scorecard(computed_at=datetime(2025, 3, 5, 12, 30))


def test_totals_count_sources_outcomes_and_effects():
    cases = [
        _case(
            "a",
            acknowledgement="met",
            feedback="pending",
            reporter_answered=True,
            simulated_effects=4,
        ),
        _case(
            "b",
            acknowledgement="late",
            feedback="met",
            confidentiality_kept=False,
            simulated_effects=1,
        ),
        _case(
            "c",
            source=Source.PARTICIPANT,
            acknowledgement="met",
            feedback="missed",
            acknowledged_at=None,
        ),
    ]
    totals = _scorecard(cases)["totals"]
    assert (totals["drill_cases"], totals["injected"], totals["participant_reports"]) == (3, 2, 1)
    assert totals["acknowledgement_deadline"] == {"met": 2, "late": 1, "missed": 0, "pending": 0}
    assert totals["feedback_deadline"] == {"met": 1, "late": 0, "missed": 1, "pending": 1}
    assert (
        totals["reporter_answered"],
        totals["confidentiality_kept"],
        totals["simulated_effects"],
    ) == (1, 2, 5)


def test_no_cases_gives_zero_totals_with_every_outcome_key():
    totals = _scorecard()["totals"]
    assert totals["acknowledgement_deadline"] == {"met": 0, "late": 0, "missed": 0, "pending": 0}
    assert totals["feedback_deadline"] == {"met": 0, "late": 0, "missed": 0, "pending": 0}
    assert (totals["drill_cases"], totals["routed_as_expected"], totals["routing_scored"]) == (
        0,
        0,
        0,
    )


# --- Participants ----------------------------------------------------------------------


def test_participant_counts_and_correct_decisions_including_decoys():
    codes = [
        _code(scenario=1),  # issued, never opened
        _code(scenario=1, used=True),  # opened, no decision yet
        _code(scenario=1, used=True, decision=Decision.REPORTED),  # correct
        _code(scenario=1, used=True, decision=Decision.NO_REPORT),  # wrong: should have reported
        _code(scenario=3, used=True, decision=Decision.NO_REPORT),  # correct: a decoy
        _code(scenario=3, used=True, decision=Decision.REPORTED),  # wrong: reported a decoy
        # Decided without "opening" the scenario first: used all the same.
        _code(scenario=2, used=False, decision=Decision.REPORTED),
        _code(scenario=3, used=False),  # a decoy left alone counts as no decision
        _code(scenario=3, used=True, decision=Decision.NO_REPORT),  # correct
    ]
    assert _scorecard(codes=codes)["participants"] == {
        "codes_issued": 9,
        "codes_used": 7,
        "reports_filed": 3,
        "no_report_decisions": 3,
        "correct_decisions": 4,
    }


def test_no_codes_gives_zeros_and_no_cohorts():
    scorecard = _scorecard(threshold=5)
    assert scorecard["participants"] == dict.fromkeys(SPEC_PARTICIPANTS, 0)
    assert scorecard["cohorts"] == []


# --- Cohorts ---------------------------------------------------------------------------


def _codes(cohort: str | None, count: int) -> list[CodeFacts]:
    return [_code(cohort) for _ in range(count)]


def test_threshold_one_keeps_every_cohort_sorted_by_label():
    codes = _codes("zeta", 1) + _codes(None, 2) + _codes("alpha", 1)
    assert _cohort_sizes(_scorecard(codes=codes, threshold=1)) == [
        ("(no cohort)", 2),
        ("alpha", 1),
        ("zeta", 1),
    ]


def test_small_cohorts_fold_into_other_which_comes_last():
    codes = (
        _codes("finance", 6)
        + _codes("audit", 5)
        + _codes("hr", 3)
        + _codes(None, 2)
        + _codes("legal", 1)
    )
    assert _cohort_sizes(_scorecard(codes=codes, threshold=5)) == [
        ("audit", 5),
        ("finance", 6),
        ("other", 6),
    ]


def test_other_still_too_small_takes_the_smallest_cohort_that_remains():
    # Without it, the participants' totals minus the named rows would give "d" away.
    codes = _codes("a", 9) + _codes("b", 6) + _codes("c", 7) + _codes("d", 1) + _codes("e", 2)
    # d and e fold: "other" = 3 < 6, so it takes b (6), the smallest left → 9.
    assert _cohort_sizes(_scorecard(codes=codes, threshold=6)) == [
        ("a", 9),
        ("c", 7),
        ("other", 9),
    ]


def test_other_may_take_every_cohort():
    codes = _codes("big", 10) + _codes("small", 3)
    assert _cohort_sizes(_scorecard(codes=codes, threshold=5)) == [("other", 13)]


def test_folding_ties_go_by_label():
    codes = _codes("pear", 5) + _codes("apple", 5) + _codes("fig", 5) + _codes("tiny", 1)
    # "other" = tiny (1) < 5: the three fives tie, "apple" goes first.
    assert _cohort_sizes(_scorecard(codes=codes, threshold=5)) == [
        ("fig", 5),
        ("pear", 5),
        ("other", 6),
    ]


def test_everything_may_fold_into_a_single_other():
    codes = _codes("a", 3) + _codes("b", 2)
    assert _cohort_sizes(_scorecard(codes=codes, threshold=10)) == [("other", 5)]


def test_a_cohort_typed_other_shares_the_other_row():
    codes = _codes("other", 5) + _codes("x", 3) + _codes("z", 3) + _codes("y", 5)
    assert _cohort_sizes(_scorecard(codes=codes, threshold=5)) == [("y", 5), ("other", 11)]


def test_cohort_rows_count_decisions():
    codes = [
        _code("a", used=True, decision=Decision.REPORTED),
        _code("a", scenario=3, used=True, decision=Decision.NO_REPORT),
        _code("b"),
    ]
    cohorts = _scorecard(codes=codes, threshold=1)["cohorts"]
    assert [row["cohort"] for row in cohorts] == ["a", "b"]
    assert [[row[count] for count in SPEC_PARTICIPANTS] for row in cohorts] == [
        [2, 2, 1, 1, 2],
        [1, 0, 0, 0, 0],
    ]


_cohort_names = st.one_of(
    st.none(), st.sampled_from(["a", "b", "c", "d", "other", "(no cohort)", "=x"])
)
_code_facts = st.builds(
    CodeFacts,
    cohort=_cohort_names,
    scenario=st.sampled_from(sorted(EXPECTED)),
    used=st.booleans(),
    decision=st.one_of(st.none(), st.sampled_from(Decision)),
)


@given(codes=st.lists(_code_facts, max_size=40), threshold=st.integers(min_value=1, max_value=12))
def test_cohorts_add_up_to_the_participants_and_none_is_too_small(codes, threshold):
    scorecard = _scorecard(codes=codes, threshold=threshold)
    cohorts = scorecard["cohorts"]
    for count in SPEC_PARTICIPANTS:
        assert sum(row[count] for row in cohorts) == scorecard["participants"][count]
    if len(cohorts) > 1:
        assert all(row["codes_issued"] >= threshold for row in cohorts)
    labels = [row["cohort"] for row in cohorts]
    assert len(labels) == len(set(labels))
    assert all(row["codes_issued"] > 0 for row in cohorts)


# --- Deadlines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done_on", "due_on", "today", "outcome"),
    [
        (date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 20), "met"),
        (date(2025, 3, 11), date(2025, 3, 11), date(2025, 3, 20), "met"),  # on the day is in time
        (date(2025, 3, 12), date(2025, 3, 11), date(2025, 3, 12), "late"),
        (None, date(2025, 3, 11), date(2025, 3, 12), "missed"),
        (None, date(2025, 3, 11), date(2025, 3, 11), "pending"),  # the due day is not over
        (None, date(2025, 3, 11), date(2025, 3, 1), "pending"),
    ],
)
def test_deadline_outcome(done_on, due_on, today, outcome):
    assert deadline_outcome(done_on, due_on, today) == outcome


# --- CSV -------------------------------------------------------------------------------

SPEC_CSV_HEADER = (
    "kind,label,source,scenario,state,seconds_to_acknowledge,seconds_to_assessment,"
    "routed_as_expected,acknowledgement_deadline,feedback_deadline,reporter_answered,"
    "confidentiality_kept,simulated_effects,codes_issued,codes_used,reports_filed,"
    "no_report_decisions,correct_decisions"
)


def test_csv_has_the_spec_header_and_a_row_per_case_total_participants_and_cohort():
    cases = [
        _case(
            "b",
            scenario=3,
            acknowledged_at=None,
            assessment_started_at=None,
            state="received",
            feedback="missed",
        ),
        _case("a", category="hiring", reporter_answered=True, simulated_effects=3),
    ]
    codes = [
        _code("north", decision=Decision.REPORTED),
        _code("south", scenario=3, decision=Decision.NO_REPORT),
    ]
    lines = scorecard_csv(_scorecard(cases, codes)).splitlines()
    assert lines == [
        SPEC_CSV_HEADER,
        "case,1,injection,1,assessing,600,900,no,met,pending,yes,yes,3,,,,,",
        "case,2,injection,3,received,,,,met,missed,no,yes,0,,,,,",
        "total,all,,,,600,900,0/1,2/0/0/0,0/0/1/1,1,2,3,,,,,",
        "participants,all,,,,,,,,,,,,2,2,1,1,2",
        "cohort,north,,,,,,,,,,,,1,1,1,0,1",
        "cohort,south,,,,,,,,,,,,1,1,0,1,1",
    ]


def test_csv_total_row_with_no_handled_cases_leaves_medians_empty():
    text = scorecard_csv(_scorecard([_case(acknowledged_at=None, assessment_started_at=None)]))
    total = next(row for row in _csv_rows(text) if row["kind"] == "total")
    assert (total["seconds_to_acknowledge"], total["seconds_to_assessment"]) == ("", "")


def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas():
    labels = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tcmd", "plain", "a=b"]
    codes = [_code(label) for label in labels]
    scorecard = _scorecard([_case(state="=1+1")], codes)
    rows = _csv_rows(scorecard_csv(scorecard))
    assert sorted(row["label"] for row in rows if row["kind"] == "cohort") == sorted(
        ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "'\tcmd", "plain", "a=b"]
    )
    case = rows[0]
    assert case["state"] == "'=1+1"
    # Numbers are written as they are.
    assert (case["label"], case["scenario"], case["simulated_effects"]) == ("1", "1", "0")


def test_participants_reports_are_never_listed_and_count_only_when_enough():
    """A row for one participant's report could single them out (the coordinator knows
    which code had which scenario), whatever the cohorts' folding."""
    injected = [_case("i1"), _case("i2", acknowledged_at=None, assessment_started_at=None)]
    few = [_case(f"p{n}", source=Source.PARTICIPANT) for n in range(2)]
    card = _scorecard(injected + few, threshold=3)
    assert [row["source"] for row in card["cases"]] == ["injection", "injection"]
    assert (card["totals"]["drill_cases"], card["totals"]["participant_reports"]) == (4, 2)
    assert card["totals"]["participant_handling_counted"] is False
    assert card["totals"]["acknowledged"] == 1  # the injections' only
    enough = few + [_case("p2", source=Source.PARTICIPANT)]
    card = _scorecard(injected + enough, threshold=3)
    assert card["totals"]["participant_handling_counted"] is True
    assert card["totals"]["acknowledged"] == 4 and len(card["cases"]) == 2
