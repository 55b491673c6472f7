"""The rules of notifications, apart from how they are stored and sent.

A notice says that something needs staff attention and where to look, never what: no
report content, no category, no organisation unit, nothing about the reporter. The only
identifier it may carry is the case id, which staff need to find the case and which
means nothing to anyone else. Notices about what a reporter did (a new report, a
message) are batched, so that their send time dates the act only to its batch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum


class EventKind(StrEnum):
    CASE_RECEIVED = "case.received"
    REPORTER_MESSAGE = "case.reporter_message"
    DEADLINE_APPROACHING = "case.deadline_approaching"
    DEADLINE_MISSED = "case.deadline_missed"
    AUDIT_VERIFICATION_FAILED = "audit.verification_failed"


EVENT_KINDS = [kind.value for kind in EventKind]
# Kinds caused by a reporter's act: held until the end of their batch.
BATCHED_KINDS = frozenset({EventKind.CASE_RECEIVED, EventKind.REPORTER_MESSAGE})
# Roles a notice may go to when no named recipient can take it.
AUDIENCES = ["triage", "supervisor", "admin", "auditor"]


class DeliveryChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


def batch_release_time(now: datetime, batch_seconds: int, jitter_seconds: float) -> datetime:
    """When an event of a batched kind written at `now` may be sent: the end of the batch
    window it falls in (windows aligned on the epoch, so every replica agrees), plus
    `jitter_seconds`. With no batching it goes at the next run."""
    if batch_seconds <= 0:
        return now
    epoch = now.timestamp()
    window_end = (math.floor(epoch / batch_seconds) + 1) * batch_seconds
    return datetime.fromtimestamp(window_end, tz=timezone.utc) + timedelta(seconds=jitter_seconds)


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff with full jitter, after `attempts` failed tries (>= 1)."""
    ceiling = min(max_seconds, base_seconds * 2 ** min(attempts - 1, 30))
    return random.SystemRandom().uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0


@dataclass(frozen=True)
class Notice:
    """One e-mail's words. Plain text, in Korean and English like the service."""

    subject: str
    lines: tuple[str, ...]

    def body(self, queue_hint: str) -> str:
        return "\n".join((*self.lines, "", queue_hint, "", FOOTER)) + "\n"


FOOTER = (
    "이 알림에는 신고 내용이 없습니다. 내용은 Clean Window에서만 확인하세요.\n"
    "This notice carries no report content; read cases in Clean Window only."
)

DEADLINE_NAMES = {"acknowledge": ("접수 확인", "acknowledgement"), "feedback": ("처리 결과 안내", "feedback")}


def _count(counts: dict[str, int], kind: EventKind) -> int:
    return counts.get(kind.value, 0)


def digest_notice(counts: dict[str, int]) -> Notice:
    """The batched notice: how many new reports and reporter messages wait, nothing more."""
    reports, messages = _count(counts, EventKind.CASE_RECEIVED), _count(counts, EventKind.REPORTER_MESSAGE)
    lines = []
    if reports:
        lines.append(f"새 신고 {reports}건이 대기 중입니다. / {reports} new report(s) waiting.")
    if messages:
        lines.append(f"신고자의 새 메시지 {messages}건. / {messages} new message(s) from reporters.")
    return Notice("[Clean Window] 새 신고·메시지 / New reports and messages", tuple(lines))


def deadline_notice(kind: EventKind, case_ids: list[str], deadlines: list[str], due_on: list[str]) -> Notice:
    missed = kind is EventKind.DEADLINE_MISSED
    subject = (
        "[Clean Window] 기한 경과 / Deadline missed"
        if missed
        else "[Clean Window] 기한 임박 / Deadline approaching"
    )
    lines = []
    for case_id, deadline, due in zip(case_ids, deadlines, due_on, strict=True):
        ko, en = DEADLINE_NAMES[deadline]
        verb = "passed" if missed else "is due"
        lines.append(f"사건 {case_id}: {ko} 기한 {due} / case {case_id}: {en} {verb} on {due}")
    return Notice(subject, tuple(lines))


def audit_failure_notice(first_bad: int | None) -> Notice:
    where = "" if first_bad is None else f" (first bad entry: {first_bad})"
    return Notice(
        "[Clean Window] 감사 기록 검증 실패 / Audit chain verification failed",
        (
            "감사 기록의 해시 체인 검증이 실패했습니다. 즉시 확인하세요.",
            f"The audit log's hash chain did not verify{where}. Investigate now.",
        ),
    )
