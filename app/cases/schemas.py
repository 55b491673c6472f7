"""What the staff case API reads and writes. Sealed bytes travel as unpadded base64url."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, model_validator

from app.domain import crypto
from app.domain.triage import Action, CaseState, Resolution


def _from_base64url(value: Any) -> bytes:
    # Responses are built from the stored bytes; requests bring base64url text.
    return value if isinstance(value, bytes) else crypto.b64url_decode(value)


Sealed = Annotated[
    bytes,
    BeforeValidator(_from_base64url),
    PlainSerializer(crypto.b64url_encode, return_type=str),
    Field(description="Ciphertext, unpadded base64url."),
]

REASON_MAX = 1000
# A message of MESSAGE_MAX characters, padded, plus nonce and tag, with room to spare.
SEALED_MESSAGE_MAX = 128 * 1024


class CaseSummary(BaseModel):
    id: uuid.UUID
    state: CaseState
    version: int
    channel: str
    category: str
    org_unit: str | None
    language: str
    is_drill: bool = Field(
        description="A case of an announced drill campaign. A blind campaign's cases show false, "
        "like real ones, until the campaign closes and purges them."
    )
    received_on: date
    acknowledge_due_on: date
    acknowledged_on: date | None
    feedback_due_on: date
    feedback_given_on: date | None
    overdue: bool = Field(description="A deadline has passed without the act it asks for (open cases only).")
    assignee: str | None = Field(description="Username of the assigned investigator.")
    resolution: Resolution | None
    purged_on: date | None = Field(
        description="The day retention deleted the case's content (docs/retention.md): from then on only "
        "this metadata and the history remain. Null while the content is kept."
    )


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class SealedKeyOut(BaseModel):
    fingerprint: str = Field(description="The public key the content key is sealed to.")
    sealed_key: Sealed


class SealedMessageOut(BaseModel):
    id: uuid.UUID
    seq: int
    author: Literal["reporter", "staff"]
    staff_username: str | None
    sent_on: date
    sent_at: datetime | None = Field(description="Staff messages only; a reporter's message carries a date.")
    sealed_body: Sealed
    seal_format: Literal[1, 2] = Field(
        description="2: sealed with its author bound in; 1: sealed before authors were bound (its "
        "author rests on the database's word). Open it in this format only."
    )


class SealedAttachmentOut(BaseModel):
    id: uuid.UUID
    author: Literal["reporter", "staff"]
    uploaded_on: date
    chunk_count: int
    chunk_bytes: int
    stored_bytes: int
    sealed_meta: Sealed


class CaseDetail(CaseSummary):
    allowed_actions: list[Action] = Field(description="The transitions the caller may take now.")
    reporter_public_key: str | None = Field(description="Null once the case is purged.")
    sealed_report: Sealed | None = Field(description="Null once the case is purged (see `purged_on`).")
    content_key: SealedKeyOut | None = Field(
        description="The case's content key sealed to the caller's registered key; null without a grant, "
        "and once the case is purged."
    )
    messages: list[SealedMessageOut]
    attachments: list[SealedAttachmentOut]
    identified: bool = Field(
        description="The reporter gave contact details, sealed apart under an identity key that no "
        "content key opens. `POST /cases/{id}/identity-requests` asks for it."
    )
    identity_released_to_you: bool = Field(
        description="A custodian released the identity to your key: `GET /cases/{id}/identity`."
    )


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    # Strict: `true` or "1" would otherwise pass as version 1, and a version is compared, not guessed.
    expected_version: int = Field(ge=1, strict=True, description="The version the caller read; a stale one gets 409.")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX)] | None = Field(
        None,
        description="Why (required for `reopen`). Stored in the clear in the history: a staff note, "
        "never a place for the report's content.",
    )
    resolution: Resolution | None = None
    assignee: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Username of an active investigator (`accept` only)."
    )


class TransitionOut(CaseSummary):
    allowed_actions: list[Action]


class HistoryEntry(BaseModel):
    version: int = Field(description="The case version this step produced.")
    action: Action
    from_state: CaseState
    to_state: CaseState
    actor: str
    actor_role: str
    occurred_at: datetime
    reason: str | None
    resolution: Resolution | None
    assignee: str | None


class History(BaseModel):
    items: list[HistoryEntry]


class StaffMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Chosen by the client: the seal's associated data binds it.")
    sealed_body: Annotated[Sealed, Field(min_length=crypto.NONCE_BYTES + 16, max_length=SEALED_MESSAGE_MAX)]
    seal_format: Literal[2] = Field(
        description="2: the body is sealed with its author (`staff`) bound into the associated data. "
        "Bodies sealed without it (format 1, older clients) are refused: a database writer could "
        "pass them off as the reporter's."
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_older_seal_formats(cls, data: Any) -> Any:
        # Said plainly, because an older `cleanwindow` shows this detail as its whole answer.
        if isinstance(data, dict) and data.get("seal_format") != crypto.MESSAGE_SEAL_FORMAT:
            raise ValueError(
                f"messages must be sealed in seal_format {crypto.MESSAGE_SEAL_FORMAT}, with their author "
                "bound in; this client seals an older format: update cleanwindow and send the message again"
            )
        return data


class StaffMessageOut(BaseModel):
    id: uuid.UUID
    seq: int
    sent_on: date
    sent_at: datetime


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grantee: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The grantee's key fingerprint the client sealed to (from GET /users/{username}/public-key)."
    )
    sealed_key: Annotated[
        Sealed, Field(min_length=crypto.SEALED_CONTENT_KEY_BYTES, max_length=crypto.SEALED_CONTENT_KEY_BYTES)
    ]


class GrantOut(BaseModel):
    grantee: str
    fingerprint: str
    granted_at: datetime


class DeadlineCompliance(BaseModel):
    met: int = Field(description="Done on or before the due date.")
    late: int = Field(description="Done after the due date.")
    missed: int = Field(description="Not done, and the due date has passed.")
    pending: int = Field(description="Not done, not yet due.")


class Stats(BaseModel):
    total: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    acknowledgement: DeadlineCompliance
    feedback: DeadlineCompliance
    as_of: date
