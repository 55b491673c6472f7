from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.staff import MAXIMUM_PASSWORD_LENGTH, Role


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime = Field(description="When the token stops working (RFC 3339, UTC).")
    expires_in: int = Field(description="Seconds until expiry, as OAuth2 clients expect.")


class StaffUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    public_key_fingerprint: str | None = Field(
        None, description="Fingerprint of the registered public key, if any."
    )
    email: str | None = Field(None, description="Where content-free notices go; none: no e-mail.")
    is_identity_custodian: bool = Field(
        False,
        description="New reports' identity keys are sealed to this account's key (set by an administrator).",
    )


class StaffUserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=64)
    role: Role
    password: str = Field(min_length=1, max_length=MAXIMUM_PASSWORD_LENGTH)
    email: str | None = Field(None, max_length=320, description="Where content-free notices go (optional).")


class PublicKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(
        max_length=2000,
        description="The text `cleanwindow keys generate` printed (`cwpk1_...`).",
    )


class PublicKeyOut(BaseModel):
    public_key: str
    fingerprint: str
    registered_at: datetime


class ColleagueKeyOut(BaseModel):
    username: str
    role: str
    public_key: str
    fingerprint: str


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(
        max_length=320,
        description="The address for notices (new reports, deadlines; never content), or null for none.",
    )


class CustodianIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custodian: bool = Field(
        description="true: seal the identity keys of reports arriving from now on to this account's key "
        "too; false: no longer (identity keys already sealed to it stay sealed to it)."
    )
