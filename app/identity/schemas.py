"""What the identity endpoints read and write. Sealed bytes travel as unpadded base64url."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.cases.schemas import Sealed
from app.domain import crypto
from app.domain.identity import REASON_MAX, REASON_MIN

Written = Annotated[str, StringConstraints(strip_whitespace=True, min_length=REASON_MIN, max_length=REASON_MAX)]
Status = Literal["pending", "declined", "consented", "approved", "released", "withdrawn"]


class IdentityRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Written = Field(
        description=f"Why you need to know who the reporter is ({REASON_MIN}-{REASON_MAX} characters). "
        "The reporter reads it, word for word, in the mailbox; it is stored in the clear and in "
        "the audit chain, so write no detail of the report into it."
    )


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_ground: Written = Field(
        description="The legal obligation that requires disclosure without the reporter's consent. "
        "The reporter is told it, unless `withhold_notice_because` is given."
    )
    withhold_notice_because: Written | None = Field(
        None,
        description="Only when telling the reporter now would jeopardise the investigation or judicial "
        "proceedings: why. The reporter is then told when a supervisor lifts this (`/lift-withholding`).",
    )


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The requester's key fingerprint the identity key was sealed to (from `GET /identity-requests/pending`)."
    )
    sealed_key: Annotated[
        Sealed, Field(min_length=crypto.SEALED_IDENTITY_KEY_BYTES, max_length=crypto.SEALED_IDENTITY_KEY_BYTES)
    ] = Field(description="The identity key, opened by the custodian's client and HPKE-sealed to the requester.")


class IdentityRequestOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    status: Status = Field(
        description="pending (awaiting the reporter), declined or consented (the reporter's answer), "
        "approved (a supervisor recorded a legal ground), released, or withdrawn."
    )
    requested_by: str
    requested_at: datetime
    reason: str
    reporter_answer: Literal["consent", "decline"] | None
    approved_by: str | None
    approved_at: datetime | None
    legal_ground: str | None
    notice_withheld: bool = Field(description="The reporter is, for now, not told of the legal decision.")
    withheld_reason: str | None = Field(
        description="Why the reporter is not told yet; shown to those who may see the case, not to a custodian who may not."
    )
    notice_lifted_by: str | None
    released_by: str | None = Field(description="The custodian who released it.")
    released_at: datetime | None
    basis: Literal["consent", "legal_obligation"] | None
    withdrawn_by: str | None


class SealedIdentityKeyOut(BaseModel):
    fingerprint: str = Field(description="The public key the identity key is sealed to.")
    sealed_key: Sealed


class ReleasableOut(BaseModel):
    request: IdentityRequestOut
    requester: str
    requester_public_key: str = Field(description="`cwpk1_...`: seal the identity key to this.")
    requester_fingerprint: str


class ReleaseWork(ReleasableOut):
    custodian_key: SealedIdentityKeyOut = Field(description="The identity key sealed to you, the custodian.")
    sealed_identity: Sealed = Field(
        description="The sealed identity, so that your client can check the key opens it before "
        "re-sealing (it need not show it to you)."
    )


class PendingOut(BaseModel):
    to_release: list[ReleasableOut] = Field(
        description="As a custodian: consented or approved requests you may release (the key material "
        "comes one request at a time from `GET /identity-requests/{id}/release-material`)."
    )
    to_approve: list[IdentityRequestOut] = Field(
        description="As a supervisor: pending or declined requests of others, to weigh on a legal ground."
    )


class ReleasedIdentityOut(BaseModel):
    case_id: uuid.UUID
    request_id: uuid.UUID
    sealed_identity: Sealed = Field(
        description="AES-256-GCM under the identity key, purpose `identity` (docs/crypto.md)."
    )
    identity_key: SealedIdentityKeyOut = Field(description="The identity key sealed to your key.")

