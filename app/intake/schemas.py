"""What the intake endpoints accept and return."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.domain.intake import Channel, Language

SUMMARY_MAX = 300
DETAILS_MAX = 50_000
FIELD_MAX = 5_000

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ReportContent(BaseModel):
    """What happened. Only `summary` and `details` are required; everything here is sealed."""

    model_config = ConfigDict(extra="forbid")

    summary: Annotated[Text, StringConstraints(max_length=SUMMARY_MAX)]
    details: Annotated[Text, StringConstraints(max_length=DETAILS_MAX)]
    when: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = Field(
        None, description="When it happened, in the reporter's words."
    )
    where: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = None
    persons_involved: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = None
    how_known: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = Field(
        None, description="How the reporter came to know (witnessed, documents, hearsay...)."
    )
    evidence: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = Field(
        None, description="What evidence exists and where; files go through the mailbox."
    )


class Contact(BaseModel):
    """Given only by a reporter who chooses to be identified (confidentially). Sealed apart
    from the report, under a key that only the reporter, the recovery key and the identity
    custodians hold: investigators who read the report see only that an identity exists,
    until it is released to one of them with the reporter's consent or on a legal ground."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, StringConstraints(max_length=200)] | None = None
    department: Annotated[Text, StringConstraints(max_length=200)] | None = Field(
        None, description="An employee's department or post."
    )
    email: Annotated[Text, StringConstraints(max_length=320)] | None = None
    phone: Annotated[Text, StringConstraints(max_length=50)] | None = None
    notes: Annotated[Text, StringConstraints(max_length=FIELD_MAX)] | None = Field(
        None, description="How and when the reporter may be contacted safely."
    )

    @model_validator(mode="after")
    def _says_something(self) -> Contact:
        if not (self.name or self.email or self.phone):
            raise ValueError("contact needs at least a name, an email or a phone number")
        return self


class ProofOfWork(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge: Annotated[str, StringConstraints(max_length=200)]
    nonce: Annotated[str, StringConstraints(max_length=64)]


class ReportSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    category: Annotated[str, StringConstraints(max_length=64)]
    org_unit: Annotated[str, StringConstraints(max_length=64)] | None = None
    language: Language = Language.KO
    content: ReportContent
    contact: Contact | None = None
    pow: ProofOfWork | None = Field(
        None, description="Required unless the service runs with POW_DIFFICULTY=0."
    )


class SubmittedReport(BaseModel):
    receipt: str = Field(
        description="The reporter's only way back to the report. Shown once, never stored; "
        "21 digits (66 bits of randomness and a check digit)."
    )
    status: str = Field("received", description="The public status of the report.")
    received_on: date
    session_url: str = "/api/v1/reporter/sessions"


class ChallengeOut(BaseModel):
    challenge: str = Field(description="Base64; solve SHA-256(decode(challenge) || nonce).")
    difficulty: int = Field(description="Leading zero bits the digest must have.")
    expires_at: datetime
    algorithm: str = "sha256-leading-zero-bits"


class OptionOut(BaseModel):
    code: str
    labels: dict[str, str]


class ProofOfWorkSettings(BaseModel):
    enabled: bool
    difficulty: int = Field(description="Bits a challenge asks for right now (more under load).")
    challenge_url: str = "/api/v1/intake/challenges"
    challenge_ttl_seconds: int
    algorithm: str = "sha256-leading-zero-bits"


class AttachmentLimits(BaseModel):
    max_bytes: int
    max_per_report: int
    max_total_bytes_per_report: int
    allowed_types: list[str]


class FieldLimits(BaseModel):
    summary: int = SUMMARY_MAX
    details: int = DETAILS_MAX
    other_fields: int = FIELD_MAX


class IntakeForm(BaseModel):
    channels: list[OptionOut]
    categories: list[OptionOut]
    org_units: list[OptionOut]
    languages: list[str]
    proof_of_work: ProofOfWorkSettings
    attachments: AttachmentLimits
    limits: FieldLimits = FieldLimits()


class InjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: int | None = Field(None, ge=1, strict=True, description="Default: the next in turn.")


class Injected(BaseModel):
    receipt: str = Field(description="The drill report's receipt (shown only here): play the reporter with it.")
    received_on: date
    scenario: int = Field(description="The scenario injected.")
