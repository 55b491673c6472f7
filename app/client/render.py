"""What the commands print: aligned tables and text for people, JSON for scripts.

Everything a reporter wrote is untrusted text that ends up on an investigator's
terminal, so control characters are shown escaped, never sent raw: an escape sequence in
a report must not be able to rewrite the screen or retitle the window.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.client.models import AuditEntry, CaseSummary, HistoryEntry, StaffAccount, Stats

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
        ",".join(name for name, on in (("overdue", case.overdue), ("drill", case.is_drill)) if on)
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
                user.role,
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
    return moment.strftime("%Y-%m-%d %H:%M")


def fields(values: dict[str, Any]) -> list[str]:
    lines = []
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        first, *rest = printable(text, keep_newlines=True).split("\n")
        lines.append(f"{INDENT}{printable(name)}: {first}")
        lines.extend(f"{INDENT * 2}{line}" for line in rest)
    return lines


def case_text(document: dict[str, Any]) -> str:
    """A decrypted case (the `--json` document of `cases show`) for a person to read."""
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
        "REPORT",
        *fields(document["report"]["content"]),
        "CONTACT",
        *(
            fields(document["report"]["contact"])
            if document["report"].get("contact")
            else [f"{INDENT}(anonymous)"]
        ),
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
