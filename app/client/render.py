"""What the commands print: aligned tables and text for people, JSON for scripts.

Everything a reporter wrote is untrusted text that ends up on an investigator's
terminal, so control characters are shown escaped, never sent raw: an escape sequence in
a report must not be able to rewrite the screen or retitle the window.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.client.models import (
        AuditEntry,
        Campaign,
        CaseSummary,
        HistoryEntry,
        IdentityRequest,
        LibraryScenario,
        PendingIdentityWork,
        Scorecard,
        StaffAccount,
        Stats,
    )

NONE = "-"
INDENT = "  "
UNREADABLE_REASON = "it is damaged, was tampered with, or its author was changed"
UNVERIFIED_MARK = "  [author unverified: sealed before authors were bound]"


def as_json(value: Any) -> str:
    # ASCII-only: every non-ASCII character (C1 controls included) is a \u escape.
    return json.dumps(value, indent=2, ensure_ascii=True, default=str)


def printable(text: str, *, keep_newlines: bool = False) -> str:
    kept = "\n\t" if keep_newlines else ""
    return "".join(
        char if char in kept or not unicodedata.category(char).startswith("C") else repr(char)[1:-1]
        for char in text
    )


def display_width(text: str) -> int:
    """Columns on a terminal: Hangul and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[printable(NONE if value is None else str(value)) for value in row] for row in rows]
    widths = [
        max([display_width(header)] + [display_width(row[i]) for row in cells])
        for i, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value + " " * (width - display_width(value))
            for value, width in zip(values, widths, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def flags(case: CaseSummary) -> str:
    return (
        ",".join(
            name
            for name, on in (("overdue", case.overdue), ("drill", case.is_drill), ("purged", case.purged_on is not None))
            if on
        )
        or NONE
    )


def case_table(cases: Sequence[CaseSummary]) -> str:
    if not cases:
        return "no cases"
    return table(
        [
            "ID",
            "STATE",
            "VER",
            "CHANNEL",
            "CATEGORY",
            "RECEIVED",
            "ACK BY",
            "FEEDBACK BY",
            "ASSIGNEE",
            "FLAGS",
        ],
        [
            [
                case.id,
                case.state,
                case.version,
                case.channel,
                case.category,
                case.received_on,
                case.acknowledge_due_on,
                case.feedback_due_on,
                case.assignee,
                flags(case),
            ]
            for case in cases
        ],
    )


def history_table(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return "no transitions yet"
    return table(
        ["VER", "WHEN (UTC)", "WHO", "ACTION", "FROM", "TO", "NOTE"],
        [
            [
                entry.version,
                timestamp(entry.occurred_at),
                f"{entry.actor or NONE} ({entry.actor_role})" if entry.actor_role else entry.actor,
                entry.action,
                entry.from_state,
                entry.to_state,
                note(entry),
            ]
            for entry in entries
        ],
    )


def note(entry: HistoryEntry) -> str:
    parts = [
        f"{label}: {value}"
        for label, value in (
            ("assignee", entry.assignee),
            ("resolution", entry.resolution),
            ("reason", entry.reason),
        )
        if value
    ]
    return "; ".join(parts) or NONE


def users_table(users: Sequence[StaffAccount]) -> str:
    if not users:
        return "no accounts"
    return table(
        ["USERNAME", "ROLE", "ACTIVE", "KEY", "CREATED (UTC)", "ID"],
        [
            [
                user.username,
                f"{user.role}+custodian" if user.is_identity_custodian else user.role,
                "yes" if user.is_active else "no",
                user.public_key_fingerprint,
                timestamp(user.created_at),
                user.id,
            ]
            for user in users
        ],
    )


def audit_table(entries: Sequence[AuditEntry]) -> str:
    if not entries:
        return "no audit entries"
    return table(
        ["SEQ", "WHEN (UTC)", "WHO", "ACTION", "CASE", "DETAILS"],
        [
            [
                entry.seq,
                timestamp(entry.occurred_at),
                f"{entry.actor or NONE} ({entry.actor_role})" if entry.actor_role else entry.actor,
                entry.action,
                entry.case_id,
                "; ".join(
                    f"{name}: {value if isinstance(value, str) else json.dumps(value)}"
                    for name, value in entry.details.items()
                )
                or NONE,
            ]
            for entry in entries
        ],
    )


def stats_text(stats: Stats) -> str:
    """Counts first, then how the deadlines were kept: the `cleanwindow stats` page."""
    lines = [f"real cases as of {stats.as_of} (drills are never counted): {stats.total}", ""]
    lines.append(table(["STATE", "CASES"], list(stats.by_state.items())))
    lines.append("")
    lines.append(
        table(["CATEGORY", "CASES"], list(stats.by_category.items()))
        if stats.by_category
        else "no categories yet"
    )
    lines.append("")
    lines.append(
        table(
            ["DEADLINE", "MET", "LATE", "MISSED", "PENDING"],
            [
                [name, kept.met, kept.late, kept.missed, kept.pending]
                for name, kept in (
                    ("acknowledgement", stats.acknowledgement),
                    ("feedback", stats.feedback),
                )
            ],
        )
    )
    return "\n".join(lines)


def timestamp(moment: datetime | str | None) -> str:
    if moment is None:
        return NONE
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def fields(values: dict[str, Any]) -> list[str]:
    lines = []
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        first, *rest = printable(text, keep_newlines=True).split("\n")
        lines.append(f"{INDENT}{printable(name)}: {first}")
        lines.extend(f"{INDENT * 2}{line}" for line in rest)
    return lines


def contact_lines(document: dict[str, Any]) -> list[str]:
    """The identity released to the reader, or what they may know of it: that it exists."""
    if document.get("identity"):
        return [f"{INDENT}(released to you; confidential: do not pass it on)", *fields(document["identity"])]
    if document["report"].get("contact"):
        return [
            f"{INDENT}(inside the report: received before identities were sealed apart, so every reader of this case sees it)",
            *fields(document["report"]["contact"]),
        ]
    if document.get("identified"):
        return [
            f"{INDENT}(identified, sealed apart: `cleanwindow cases identity-request {document['id']} --reason ...` "
            "asks for it; once released, `cases show --identity` shows it)"
        ]
    return [f"{INDENT}(anonymous)"]


def case_text(document: dict[str, Any]) -> str:
    """A decrypted case (the `--json` document of `cases show`) for a person to read; of
    a purged case, the metadata that remains."""
    marks = "".join(
        f"  [{mark}]"
        for mark, on in (("drill", document["is_drill"]), ("overdue", document["overdue"]))
        if on
    )
    acknowledged = (
        f" (acknowledged {document['acknowledged_on']})" if document.get("acknowledged_on") else ""
    )
    feedback = (
        f" (given {document['feedback_given_on']})" if document.get("feedback_given_on") else ""
    )
    lines = [
        f"case {document['id']}  state {document['state']}  version {document['version']}{marks}",
        f"channel {document['channel']}  category {document['category']}  "
        f"unit {document.get('org_unit') or NONE}  language {document['language']}",
        f"received {document['received_on']}  acknowledge by {document['acknowledge_due_on']}{acknowledged}  "
        f"feedback by {document.get('feedback_due_on') or NONE}{feedback}",
        f"assignee {document.get('assignee') or NONE}  resolution {document.get('resolution') or NONE}",
        f"you may: {', '.join(document.get('allowed_actions') or []) or 'nothing now'}",
        "",
    ]
    if document.get("purged_on"):
        lines.append(
            f"content deleted by retention on {document['purged_on']}: the report, messages, attachments and "
            f"any identity are gone; `cleanwindow cases history {document['id']}` shows what was done"
        )
        return "\n".join(lines)
    lines += [
        "REPORT",
        *fields(document["report"]["content"]),
        "CONTACT",
        *contact_lines(document),
        "",
        "MESSAGES",
    ]
    for message in document["messages"]:
        author = (
            f"staff {message['staff_username']}"
            if message.get("staff_username")
            else message["author"]
        )
        when = (
            timestamp(message["sent_at"]) + " UTC" if message.get("sent_at") else message["sent_on"]
        )
        mark = "" if message["author_verified"] or not message["readable"] else UNVERIFIED_MARK
        lines.append(f"{INDENT}#{message['seq']} {printable(author)}, {when}{mark}")
        if not message["readable"]:
            lines.append(f"{INDENT * 2}[does not open: {UNREADABLE_REASON}]")
            continue
        lines.extend(
            INDENT * 2 + line for line in printable(message["body"], keep_newlines=True).split("\n")
        )
    if not document["messages"]:
        lines.append(f"{INDENT}(none)")
    lines += ["", "ATTACHMENTS"]
    if document["attachments"]:
        attachment_rows = [
            [
                item["id"],
                item["filename"] if item.get("readable", True) else "[does not open]",
                item["media_type"],
                item["size_bytes"],
                item["author"],
                item["uploaded_on"],
            ]
            for item in document["attachments"]
        ]
        attachments = table(["ID", "NAME", "TYPE", "BYTES", "FROM", "UPLOADED"], attachment_rows)
        lines.extend(INDENT + line for line in attachments.split("\n"))
    else:
        lines.append(f"{INDENT}(none)")
    return "\n".join(lines)


# --- drills ---------------------------------------------------------------------------


def yes_no(value: bool | None) -> str:
    return NONE if value is None else "yes" if value else "no"


def duration(seconds: float | None) -> str:
    """A time to acknowledge or assess, to the unit that matters: 45s, 12m 05s, 3h 04m, 2d 05h."""
    if seconds is None:
        return NONE
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def bilingual(text: dict[str, str], language: str) -> str:
    return text.get(language) or NONE


def campaigns_table(campaigns: Sequence[Campaign]) -> str:
    if not campaigns:
        return "no campaigns"
    return table(
        [
            "ID", "NAME", "STATE", "STARTS (UTC)", "ENDS (UTC)", "BLIND", "SCENARIOS", "CODES",
            "CASES",
        ],
        [
            [
                campaign.id,
                campaign.name,
                campaign.state,
                timestamp(campaign.starts_at),
                timestamp(campaign.ends_at),
                yes_no(campaign.blind),
                len(campaign.scenarios),
                campaign.codes_issued,
                campaign.drill_cases,
            ]
            for campaign in campaigns
        ],
    )


def campaign_text(campaign: Campaign) -> str:
    """One campaign for a person to read: `drills show` and `drills create`."""
    accepting = "accepting reports" if campaign.accepting_reports else "not accepting reports"
    purged = "" if campaign.purged_cases is None else f"  purged at close {campaign.purged_cases}"
    closed = f"  closed {timestamp(campaign.closed_at)} UTC" if campaign.closed_at else ""
    lines = [
        f"campaign {campaign.id}  {printable(campaign.name)}",
        f"state {campaign.state} ({accepting})  blind {yes_no(campaign.blind)}",
        f"runs {timestamp(campaign.starts_at)} to {timestamp(campaign.ends_at)} UTC  "
        f"created {timestamp(campaign.created_at)} UTC{closed}",
        f"codes issued {campaign.codes_issued}  drill cases {campaign.drill_cases}{purged}",
        f"you may: {', '.join(campaign.allowed_actions) or 'nothing now'}",
        "",
        "SCENARIOS",
    ]
    if not campaign.scenarios:
        lines.append(f"{INDENT}(none)")
        return "\n".join(lines)
    scenarios = table(
        ["#", "FROM LIBRARY", "REPORT?", "CATEGORY", "UNIT", "TITLE (KO)", "TITLE (EN)"],
        [
            [
                scenario.number,
                scenario.library,
                yes_no(scenario.expected.get("report")),
                scenario.expected.get("category"),
                expected_unit(scenario.expected),
                bilingual(scenario.title, "ko"),
                bilingual(scenario.title, "en"),
            ]
            for scenario in campaign.scenarios
        ],
    )
    lines.extend(INDENT + line for line in scenarios.split("\n"))
    return "\n".join(lines)


def expected_unit(expected: dict[str, Any]) -> str:
    if expected.get("org_unit"):
        return str(expected["org_unit"])
    # A unit left open matters only when the scenario should be reported at all.
    return "any" if expected.get("report") else NONE


def library_table(scenarios: Sequence[LibraryScenario]) -> str:
    if not scenarios:
        return "the scenario library is empty"
    return table(
        ["#", "SLUG", "AREA", "REPORT?", "TITLE (KO)", "TITLE (EN)"],
        [
            [
                number,
                scenario.slug,
                scenario.area,
                yes_no(scenario.expected.get("report")),
                bilingual(scenario.title, "ko"),
                bilingual(scenario.title, "en"),
            ]
            for number, scenario in enumerate(scenarios, start=1)
        ],
    )


def scorecard_text(card: Scorecard) -> str:
    """Totals, then one row per drill case and per cohort: `drills scorecard`."""
    totals, people = card.totals, card.participants
    when = (
        f"frozen at close, computed {timestamp(card.computed_at)} UTC"
        if card.frozen
        else f"as of {timestamp(card.computed_at)} UTC (final at close)"
    )
    lines = [
        f"scorecard of campaign {card.campaign.id}  {printable(card.campaign.name)}",
        f"state {card.campaign.state}  blind {yes_no(card.campaign.blind)}  {when}",
        "",
        "TOTALS",
        f"{INDENT}drill cases {totals.drill_cases} (injected {totals.injected}, "
        f"participant reports {totals.participant_reports})",
        f"{INDENT}acknowledged {totals.acknowledged}  median time to acknowledge "
        f"{duration(totals.median_seconds_to_acknowledge)}  median time to assessment "
        f"{duration(totals.median_seconds_to_assessment)}",
        f"{INDENT}routed as expected {totals.routed_as_expected} of {totals.routing_scored}",
        f"{INDENT}reporter answered {totals.reporter_answered}  confidentiality kept "
        f"{totals.confidentiality_kept} of {totals.drill_cases}  simulated effects "
        f"{totals.simulated_effects}",
        f"{INDENT}participants: codes issued {people.codes_issued}, used {people.codes_used}, "
        f"reports filed {people.reports_filed}, no-report decisions {people.no_report_decisions}, "
        f"correct decisions {people.correct_decisions}",
    ]
    deadlines = table(
        ["DEADLINE", "MET", "LATE", "MISSED", "PENDING"],
        [
            [name, kept.met, kept.late, kept.missed, kept.pending]
            for name, kept in (
                ("acknowledgement", totals.acknowledgement_deadline),
                ("feedback", totals.feedback_deadline),
            )
        ],
    )
    lines.append("")
    lines.extend(INDENT + line for line in deadlines.split("\n"))
    lines += ["", "CASES"]
    if card.cases:
        cases = table(
            [
                "REF", "SOURCE", "SCENARIO", "STATE", "TO ACK", "TO ASSESS", "ROUTED",
                "ACK DEADLINE", "FEEDBACK DEADLINE", "ANSWERED", "CONFIDENTIAL", "EFFECTS",
            ],
            [
                [
                    case.ref,
                    case.source,
                    case.scenario,
                    case.state,
                    duration(case.seconds_to_acknowledge),
                    duration(case.seconds_to_assessment),
                    yes_no(case.routed_as_expected),
                    case.acknowledgement_deadline,
                    case.feedback_deadline,
                    yes_no(case.reporter_answered),
                    yes_no(case.confidentiality_kept),
                    case.simulated_effects,
                ]
                for case in card.cases
            ],
        )
        lines.extend(INDENT + line for line in cases.split("\n"))
    else:
        lines.append(f"{INDENT}(none)")
    lines += ["", f"COHORTS (cohorts of fewer than {card.cohort_threshold} codes are merged into other)"]
    if card.cohorts:
        cohorts = table(
            ["COHORT", "CODES", "USED", "REPORTS", "NO REPORT", "CORRECT"],
            [
                [
                    cohort.cohort,
                    cohort.codes_issued,
                    cohort.codes_used,
                    cohort.reports_filed,
                    cohort.no_report_decisions,
                    cohort.correct_decisions,
                ]
                for cohort in card.cohorts
            ],
        )
        lines.extend(INDENT + line for line in cohorts.split("\n"))
    else:
        lines.append(f"{INDENT}(none)")
    return "\n".join(lines)


# --- confidential identity --------------------------------------------------------------


def identity_request_text(request: IdentityRequest) -> str:
    lines = [
        f"identity request {request.id}  case {request.case_id}  {request.status}",
        f"asked by {request.requested_by} at {timestamp(request.requested_at)} UTC",
        f"reason: {printable(request.reason)}",
        f"reporter's answer: {request.reporter_answer or NONE}",
    ]
    if request.approved_by:
        withheld = "  (the reporter is not told yet)" if request.notice_withheld else ""
        lines.append(f"legal ground recorded by {request.approved_by}: {printable(request.legal_ground or '')}{withheld}")
        if request.withheld_reason:
            lines.append(f"notice withheld because: {printable(request.withheld_reason)}")
    if request.released_by:
        lines.append(f"released by {request.released_by} at {timestamp(request.released_at)} UTC ({request.basis})")
    if request.withdrawn_by:
        lines.append(f"withdrawn by {request.withdrawn_by}")
    return "\n".join(lines)


def identity_pending_text(work: PendingIdentityWork) -> str:
    if not work.to_release and not work.to_approve:
        return "nothing is waiting for you"
    blocks = []
    if work.to_release:
        blocks.append(
            "TO RELEASE (cleanwindow identity release REQUEST_ID --key FILE)\n"
            + table(
                ["REQUEST", "CASE", "TO", "BASIS", "ASKED (UTC)"],
                [
                    [
                        item.request.id,
                        item.request.case_id,
                        item.requester,
                        "consent" if item.request.status == "consented" else "legal ground",
                        timestamp(item.request.requested_at),
                    ]
                    for item in work.to_release
                ],
            )
        )
    if work.to_approve:
        blocks.append(
            "TO WEIGH (cleanwindow identity show REQUEST_ID; identity approve REQUEST_ID --legal-ground ...)\n"
            + table(
                ["REQUEST", "CASE", "ASKED BY", "STATUS", "ASKED (UTC)"],
                [
                    [request.id, request.case_id, request.requested_by, request.status, timestamp(request.requested_at)]
                    for request in work.to_approve
                ],
            )
        )
    return "\n\n".join(blocks)
