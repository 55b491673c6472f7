"""A drill campaign's scorecard: how the mock reports were handled, and what participants decided.

The service gathers the facts from the system's own records; this module only shapes them
into the scorecard (the JSON that `GET /api/v1/drills/{id}/scorecard` answers and that is
frozen when a campaign closes) and its CSV. A scorecard is read by more people than the
cases are, so it holds nothing that leads back to a case or a person: no case id and no
time of a case (a row ordered or stamped by time could be matched to the report that
arrived then), and participants only as counts per cohort, where a cohort too small to
hide in is folded into "other".
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, get_args

from app.domain.drills import Decision, Source

DeadlineOutcome = Literal["met", "late", "missed", "pending"]
DEADLINE_OUTCOMES: tuple[DeadlineOutcome, ...] = get_args(DeadlineOutcome)

NO_COHORT = "(no cohort)"
OTHER_COHORT = "other"

CSV_COLUMNS = (
    "kind",
    "label",
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
    "codes_issued",
    "codes_used",
    "reports_filed",
    "no_report_decisions",
    "correct_decisions",
)
PARTICIPANT_COUNTS = (
    "codes_issued",
    "codes_used",
    "reports_filed",
    "no_report_decisions",
    "correct_decisions",
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); cohort labels are typed by coordinators. Tab and carriage return are on
# OWASP's list too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Expected:
    """A scenario's expected handling."""

    report: bool
    category: str | None
    org_unit: str | None  # None: any unit is fine


@dataclass(frozen=True)
class CaseFacts:
    """One drill case, from the system's own records."""

    order_key: str  # opaque and time-free (the case id): fixes the row order, never shown
    source: Source
    scenario: int  # 1-based
    state: str
    received_at: datetime
    acknowledged_at: datetime | None  # first `acknowledge` transition
    assessment_started_at: datetime | None  # first `start_assessment`
    category: str
    org_unit: str | None
    acknowledgement: DeadlineOutcome
    feedback: DeadlineOutcome
    reporter_answered: bool
    confidentiality_kept: bool
    simulated_effects: int


@dataclass(frozen=True)
class CodeFacts:
    """One participant code; nothing links it to a person or a time."""

    cohort: str | None
    scenario: int
    used: bool  # the participant opened the scenario
    decision: Decision | None


def deadline_outcome(done_on: date | None, due_on: date, today: date) -> DeadlineOutcome:
    if done_on is not None:
        return "met" if done_on <= due_on else "late"
    return "missed" if due_on < today else "pending"


def build_scorecard(
    *,
    campaign: Mapping[str, object],
    cases: Sequence[CaseFacts],
    codes: Sequence[CodeFacts],
    expected: Mapping[int, Expected],
    cohort_threshold: int,
    computed_at: datetime,
    frozen: bool,
) -> dict:
    """The scorecard JSON (plain dicts, lists, strings, numbers, booleans and None)."""
    unscored = sorted({fact.scenario for fact in [*cases, *codes]} - set(expected))
    if unscored:
        raise ValueError(f"no expected handling for scenario(s) {', '.join(map(str, unscored))}")
    # Only injected cases get a row of their own. A participant's report is one person's
    # act: a row (its scenario, its handling) could single them out even when their cohort
    # is folded away. Their handling counts in the totals only when there are enough of
    # them to hide in, and they are counted there, never listed.
    injected = sorted(
        (case for case in cases if Source(case.source) is Source.INJECTION),
        key=lambda case: (case.scenario, case.order_key),
    )
    participant = [case for case in cases if Source(case.source) is Source.PARTICIPANT]
    rows = [
        _case_row(ref, case, expected[case.scenario]) for ref, case in enumerate(injected, start=1)
    ]
    counted = list(rows)
    include_participants = len(participant) >= cohort_threshold
    if include_participants:
        counted += [_case_row(0, case, expected[case.scenario]) for case in participant]
    totals = _totals(counted)
    totals["drill_cases"] = len(cases)
    totals["participant_reports"] = len(participant)
    totals["participant_handling_counted"] = include_participants
    return {
        "campaign": dict(campaign),
        "frozen": frozen,
        "computed_at": _rfc3339(computed_at),
        "cohort_threshold": cohort_threshold,
        "totals": totals,
        "cases": rows,
        "participants": _participant_counts(codes, expected),
        "cohorts": _cohorts(codes, expected, cohort_threshold),
    }


def scorecard_csv(scorecard: Mapping) -> str:
    """The scorecard as CSV: a row per case, the totals, the participants, a row per cohort."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for case in scorecard["cases"]:
        writer.writerow(_csv_row({**case, "kind": "case", "label": case["ref"]}))
    totals = scorecard["totals"]
    writer.writerow(
        _csv_row(
            {
                "kind": "total",
                "label": "all",
                "seconds_to_acknowledge": totals["median_seconds_to_acknowledge"],
                "seconds_to_assessment": totals["median_seconds_to_assessment"],
                "routed_as_expected": f"{totals['routed_as_expected']}/{totals['routing_scored']}",
                "acknowledgement_deadline": _outcome_counts_cell(
                    totals["acknowledgement_deadline"]
                ),
                "feedback_deadline": _outcome_counts_cell(totals["feedback_deadline"]),
                "reporter_answered": totals["reporter_answered"],
                "confidentiality_kept": totals["confidentiality_kept"],
                "simulated_effects": totals["simulated_effects"],
            }
        )
    )
    writer.writerow(_csv_row({**scorecard["participants"], "kind": "participants", "label": "all"}))
    for cohort in scorecard["cohorts"]:
        writer.writerow(_csv_row({**cohort, "kind": "cohort", "label": cohort["cohort"]}))
    return out.getvalue()


def _case_row(ref: int, case: CaseFacts, expected: Expected) -> dict:
    return {
        "ref": ref,
        "source": Source(case.source).value,
        "scenario": case.scenario,
        "state": case.state,
        "seconds_to_acknowledge": _seconds_between(case.received_at, case.acknowledged_at),
        "seconds_to_assessment": _seconds_between(case.received_at, case.assessment_started_at),
        "routed_as_expected": _routed_as_expected(case, expected),
        "acknowledgement_deadline": case.acknowledgement,
        "feedback_deadline": case.feedback,
        "reporter_answered": case.reporter_answered,
        "confidentiality_kept": case.confidentiality_kept,
        "simulated_effects": case.simulated_effects,
    }


def _seconds_between(received_at: datetime, done_at: datetime | None) -> int | None:
    if done_at is None:
        return None
    # A participant's report is timed from the hour it arrived (its exact time is not
    # kept), so a quick acknowledgement can seem to come before it.
    return max(0, int((done_at - received_at).total_seconds()))


def _routed_as_expected(case: CaseFacts, expected: Expected) -> bool | None:
    if not expected.report:
        return None  # a decoy: nothing should have been reported, so there is no routing to score
    return case.category == expected.category and (
        expected.org_unit is None or case.org_unit == expected.org_unit
    )


def _totals(rows: Sequence[Mapping]) -> dict:
    scored = [row["routed_as_expected"] for row in rows if row["routed_as_expected"] is not None]
    return {
        "drill_cases": len(rows),
        "injected": sum(row["source"] == Source.INJECTION for row in rows),
        "participant_reports": sum(row["source"] == Source.PARTICIPANT for row in rows),
        "acknowledged": sum(row["seconds_to_acknowledge"] is not None for row in rows),
        "median_seconds_to_acknowledge": _median(row["seconds_to_acknowledge"] for row in rows),
        "median_seconds_to_assessment": _median(row["seconds_to_assessment"] for row in rows),
        "routed_as_expected": sum(scored),
        "routing_scored": len(scored),
        "acknowledgement_deadline": _outcome_counts(
            row["acknowledgement_deadline"] for row in rows
        ),
        "feedback_deadline": _outcome_counts(row["feedback_deadline"] for row in rows),
        "reporter_answered": sum(row["reporter_answered"] for row in rows),
        "confidentiality_kept": sum(row["confidentiality_kept"] for row in rows),
        "simulated_effects": sum(row["simulated_effects"] for row in rows),
    }


def _median(values: Iterable[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present)) if present else None


def _outcome_counts(outcomes: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(DEADLINE_OUTCOMES, 0)
    for outcome in outcomes:
        if outcome not in counts:
            raise ValueError(
                f"{outcome!r} is not a deadline outcome ({', '.join(DEADLINE_OUTCOMES)})"
            )
        counts[outcome] += 1
    return counts


def _participant_counts(
    codes: Iterable[CodeFacts], expected: Mapping[int, Expected]
) -> dict[str, int]:
    counts = dict.fromkeys(PARTICIPANT_COUNTS, 0)
    for code in codes:
        counts["codes_issued"] += 1
        counts["codes_used"] += code.used or code.decision is not None
        counts["reports_filed"] += code.decision == Decision.REPORTED
        counts["no_report_decisions"] += code.decision == Decision.NO_REPORT
        should_report = expected[code.scenario].report
        counts["correct_decisions"] += (code.decision == Decision.REPORTED and should_report) or (
            code.decision == Decision.NO_REPORT and not should_report
        )
    return counts


def _cohorts(
    codes: Sequence[CodeFacts], expected: Mapping[int, Expected], threshold: int
) -> list[dict]:
    """Counts per cohort, each row large enough that no participant stands out in it.

    A cohort with fewer codes than `threshold` goes into "other"; while "other" is itself
    too small it takes the next smallest cohort too (else the participants' totals minus
    the named rows would give it away), until it is large enough or the only row left.
    """
    groups: dict[str, list[CodeFacts]] = defaultdict(list)
    for code in codes:
        groups[NO_COHORT if code.cohort is None else code.cohort].append(code)
    # A cohort typed as "other" joins the "other" row: two rows of one label would be
    # ambiguous, and the counts come out the same (apart, it would be folded in when small,
    # and when not, "other" would need nothing more).
    other = groups.pop(OTHER_COHORT, [])
    for label in [label for label, members in groups.items() if len(members) < threshold]:
        other += groups.pop(label)
    # Every cohort left has `threshold` codes or more, so one step is enough; the loop
    # states the rule rather than relying on that.
    while other and len(other) < threshold and groups:
        smallest = min(groups, key=lambda label: (len(groups[label]), label))
        other += groups.pop(smallest)
    labelled = [(label, groups[label]) for label in sorted(groups)]
    if other:
        labelled.append((OTHER_COHORT, other))
    return [
        {"cohort": label, **_participant_counts(members, expected)} for label, members in labelled
    ]


def _rfc3339(moment: datetime) -> str:
    if moment.utcoffset() is None:
        raise ValueError("computed_at needs a time zone; naive datetimes are not instants")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _outcome_counts_cell(counts: Mapping[str, int]) -> str:
    return "/".join(str(counts[outcome]) for outcome in DEADLINE_OUTCOMES)


def _csv_row(values: Mapping[str, object]) -> list[str]:
    return [_csv_cell(values.get(column)) for column in CSV_COLUMNS]


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return str(value)
