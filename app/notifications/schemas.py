from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Also the mail's Message-ID and the webhook-id header.")
    channel: str = Field(description="`email` or `webhook`.")
    target: str = Field(description="The staff address, or the webhook endpoint's configured name.")
    kind: str = Field(description="What the notice was about (`digest`, `case.deadline_missed`, ...).")
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = Field(description="Why the last try failed (a short reason, never the payload).")
