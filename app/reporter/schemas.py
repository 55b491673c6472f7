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


class ReporterReport(BaseModel):
    status: str = Field(description="received, in_review, in_progress, referred or closed.")
    received_on: date
    channel: str
    category: str
    org_unit: str | None
    language: str
    content: dict[str, Any]
    contact: dict[str, Any] | None
    messages: list[MessageOut]
    attachments: list[AttachmentOut]
