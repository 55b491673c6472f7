from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MESSAGE_MAX = 20_000


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        examples=["123-456-789-012-345-678-901"]
    )


class SessionOut(BaseModel):
    token: str = Field(description="Bearer token for the mailbox; it is not stored anywhere on the server.")
    expires_at: datetime


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX)]


class MessageOut(BaseModel):
    id: uuid.UUID
    seq: int
    author: Literal["reporter", "staff"]
    sent_on: date
    body: str | None = Field(description="The text; null when the message does not open (see `readable`).")
    readable: bool = Field(
        description="False when the message does not open: damaged, sealed under another key, not "
        "UTF-8 text, or its author changed in the database. The other messages are shown all the same."
    )
    author_verified: bool = Field(
        description="True when the sealed message itself names `author`. False for a message sealed "
        "before authors were bound (its author is only the database's word) and for an unreadable one."
    )


class MessageCreated(BaseModel):
    id: uuid.UUID
    seq: int
    sent_on: date


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str | None = Field(description="Null when the attachment does not open (`readable` false).")
    media_type: str | None
    size_bytes: int | None
    uploaded_on: date
    author: Literal["reporter", "staff"]
    readable: bool = Field(
        True, description="False when the attachment's sealed description does not open (damaged)."
    )


class IdentityRequestForReporter(BaseModel):
    """A staff member's request to learn who the reporter is, as the reporter is shown it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    requested_on: date
    requested_by_role: str = Field(description="The requester's role (investigator, triage or supervisor).")
    reason: str = Field(description="Why they ask, in their words.")
    status: Literal["pending", "declined", "consented", "approved", "released", "withdrawn"] = Field(
        description="pending: awaiting your answer; consented / declined: your answer, which you may "
        "change until the identity is released; approved: a supervisor decided the law requires "
        "disclosure (see `legal_ground`); released: the requester can now read your identity; "
        "withdrawn: the request was dropped."
    )
    your_answer: Literal["consent", "decline"] | None
    legal_ground: str | None = Field(
        description="The legal ground a supervisor recorded for disclosing without consent, once you may be told."
    )
    may_answer: bool = Field(description="Whether an answer (POST .../identity-requests/{id}) still counts.")


class IdentityAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Literal["consent", "decline"] = Field(
        description="consent: a custodian may give your identity to the requester; decline: they may not "
        "(unless a supervisor records that the law requires it, in which case you are told)."
    )


class ReporterReport(BaseModel):
    status: str = Field(description="received, in_review, in_progress, referred or closed.")
    received_on: date
    channel: str
    category: str
    org_unit: str | None
    language: str
    content: dict[str, Any]
    contact: dict[str, Any] | None = Field(
        description="The contact you gave (sealed apart from the report, under a key investigators do not hold)."
    )
    identity_requests: list[IdentityRequestForReporter] = Field(
        default_factory=list, description="Requests by staff to learn your identity, oldest first."
    )
    messages: list[MessageOut]
    attachments: list[AttachmentOut]
