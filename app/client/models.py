"""What the API answers, as the client reads it.

Unknown fields are kept (`extra="allow"`), so `--json` passes on whatever a newer server
adds; a missing or malformed field the client relies on is a clear error, not a crash.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, RootModel


def decode_sealed(text: str) -> bytes:
    # Imported when something sealed arrives: listing cases or accounts needs no crypto.
    from app.domain.crypto import b64url_decode

    return b64url_decode(text)


# Bytes travel in JSON as base64url without padding, the crypto module's own encoding.
Sealed = Annotated[bytes, BeforeValidator(decode_sealed)]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CaseSummary(Answer):
    id: uuid.UUID
    state: str
    version: int
    channel: str
    category: str
    org_unit: str | None = None
    language: str
    is_drill: bool
    received_on: date
    acknowledge_due_on: date
    acknowledged_on: date | None = None
    feedback_due_on: date | None = None
    feedback_given_on: date | None = None
    overdue: bool
    assignee: str | None = None
    resolution: str | None = None
    # Set once retention deleted the content: only this metadata and the history remain.
    purged_on: date | None = None


class CasePage(Answer):
    items: list[CaseSummary]
    next_cursor: str | None = None


class SealedKey(Answer):
    fingerprint: str
    sealed_key: Sealed


class SealedMessage(Answer):
    id: uuid.UUID
    seq: int
    author: str
    staff_username: str | None = None
    sent_on: date
    sent_at: datetime | None = None
    sealed_body: Sealed
    # None from a service that does not say: then both formats are tried, as before.
    seal_format: int | None = None


class SealedAttachment(Answer):
    id: uuid.UUID
    author: str
    uploaded_on: date
    chunk_count: int
    chunk_bytes: int
    sealed_meta: Sealed


class CaseDetail(CaseSummary):
    sealed_report: Sealed | None = None  # None once the case is purged
    content_key: SealedKey | None = None
    messages: list[SealedMessage] = []
    attachments: list[SealedAttachment] = []
    allowed_actions: list[str] = []
    # Absent from a server older than sealed identities: such a server kept the contact
    # inside the report.
    identified: bool = False
    identity_released_to_you: bool = False


class TransitionResult(CaseSummary):
    allowed_actions: list[str] = []


class HistoryEntry(Answer):
    version: int  # the case version this step produced
    action: str
    from_state: str | None = None
    to_state: str
    actor: str | None = None
    actor_role: str | None = None
    occurred_at: datetime
    reason: str | None = None
    resolution: str | None = None
    assignee: str | None = None


class History(Answer):
    items: list[HistoryEntry]


class MessageSent(Answer):
    id: uuid.UUID
    seq: int


class StaffPublicKey(Answer):
    username: str
    public_key: str
    fingerprint: str


class GrantMade(Answer):
    grantee: str
    fingerprint: str


class RegisteredKey(Answer):
    fingerprint: str


class IssuedToken(Answer):
    access_token: str
    expires_at: datetime | None = None


class StaffAccount(Answer):
    id: uuid.UUID
    username: str
    role: str
    is_active: bool
    created_at: datetime
    public_key_fingerprint: str | None = None
    is_identity_custodian: bool = False
    email: str | None = None


class StaffAccounts(RootModel[list[StaffAccount]]):
    """`GET /users` answers a bare list."""


class AuditEntry(Answer):
    seq: int
    occurred_at: datetime
    actor: str | None = None
    actor_role: str | None = None
    action: str
    case_id: uuid.UUID | None = None
    details: dict[str, Any] = {}
    prev_hash: str
    hash: str


class AuditPage(Answer):
    items: list[AuditEntry]
    next_cursor: str | None = None


class AuditVerification(Answer):
    ok: bool
    entries: int
    first_bad: int | None = None
    head_hash: str


class DeadlineCompliance(Answer):
    met: int
    late: int
    missed: int
    pending: int


class Stats(Answer):
    total: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    acknowledgement: DeadlineCompliance
    feedback: DeadlineCompliance
    as_of: date


# --- drills ---------------------------------------------------------------------------
# Scenario texts and report bodies are passed on as the server wrote them: the client only
# shows a title and what is expected, and `--json` keeps the rest.


class DrillScenario(Answer):
    number: int
    title: dict[str, str]
    brief: dict[str, str] = {}
    report: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    library: str | None = None


class Campaign(Answer):
    id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    blind: bool
    state: str
    accepting_reports: bool
    allowed_actions: list[str] = []
    created_at: datetime
    closed_at: datetime | None = None
    scenarios: list[DrillScenario] = []
    codes_issued: int
    drill_cases: int
    purged_cases: int | None = None


class CreatedCampaign(Campaign):
    injection_token: str


class Campaigns(Answer):
    items: list[Campaign]


class LibraryScenario(Answer):
    slug: str
    area: str
    title: dict[str, str]
    brief: dict[str, str] = {}
    report: dict[str, Any] = {}
    expected: dict[str, Any] = {}


class ScenarioLibrary(Answer):
    items: list[LibraryScenario]


class Injection(Answer):
    receipt: str
    received_on: date
    scenario: int


class IssuedCodes(Answer):
    cohort: str | None = None
    codes: list[str]


class ScorecardCampaign(Answer):
    id: uuid.UUID
    name: str
    state: str
    blind: bool


class ScorecardTotals(Answer):
    drill_cases: int
    injected: int
    participant_reports: int
    acknowledged: int
    median_seconds_to_acknowledge: float | None = None
    median_seconds_to_assessment: float | None = None
    routed_as_expected: int
    routing_scored: int
    acknowledgement_deadline: DeadlineCompliance
    feedback_deadline: DeadlineCompliance
    reporter_answered: int
    confidentiality_kept: int
    simulated_effects: int


class ScorecardCase(Answer):
    ref: int
    source: str
    scenario: int | None = None
    state: str
    seconds_to_acknowledge: float | None = None
    seconds_to_assessment: float | None = None
    routed_as_expected: bool | None = None
    acknowledgement_deadline: str
    feedback_deadline: str
    reporter_answered: bool
    confidentiality_kept: bool
    simulated_effects: int


class ParticipantFigures(Answer):
    codes_issued: int
    codes_used: int
    reports_filed: int
    no_report_decisions: int
    correct_decisions: int


class CohortFigures(ParticipantFigures):
    cohort: str


class Scorecard(Answer):
    campaign: ScorecardCampaign
    frozen: bool
    computed_at: datetime
    cohort_threshold: int
    totals: ScorecardTotals
    cases: list[ScorecardCase]
    participants: ParticipantFigures
    cohorts: list[CohortFigures] = []


# --- confidential identity --------------------------------------------------------------


class IdentityRequest(Answer):
    id: uuid.UUID
    case_id: uuid.UUID
    status: str
    requested_by: str
    requested_at: datetime
    reason: str
    reporter_answer: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    legal_ground: str | None = None
    notice_withheld: bool = False
    withheld_reason: str | None = None
    released_by: str | None = None
    released_at: datetime | None = None
    basis: str | None = None
    withdrawn_by: str | None = None


class IdentityRequests(RootModel[list[IdentityRequest]]):
    """`GET /cases/{id}/identity-requests` answers a bare list."""


class Releasable(Answer):
    request: IdentityRequest
    requester: str
    requester_public_key: str
    requester_fingerprint: str


class ReleaseWork(Releasable):
    custodian_key: SealedKey
    sealed_identity: Sealed


class PendingIdentityWork(Answer):
    to_release: list[Releasable] = []
    to_approve: list[IdentityRequest] = []


class ReleasedIdentity(Answer):
    case_id: uuid.UUID
    request_id: uuid.UUID
    sealed_identity: Sealed
    identity_key: SealedKey
