"""What the drill API reads and writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.domain.drills import CampaignAction, CampaignState
from app.intake.schemas import ReportSubmission

MAX_SCENARIOS = 50
MAX_CODES_PER_BATCH = 1000

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Cohort = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ko: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    en: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]


class ShortBilingual(Bilingual):
    ko: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    en: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ScenarioReport(ReportSubmission):
    """The report an injection submits: a report body without proof of work or contact."""

    @model_validator(mode="after")
    def _no_contact_or_work(self) -> ScenarioReport:
        if self.contact is not None or self.pow is not None:
            raise ValueError("a scenario's report carries neither `contact` nor `pow`")
        return self


class Expected(BaseModel):
    """How the scenario should be handled, for the scorecard."""

    model_config = ConfigDict(extra="forbid")

    report: bool = Field(description="Whether it should be reported at all; false for a decoy.")
    category: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="The category a correct report has (null for a decoy)."
    )
    org_unit: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="The organisation unit a correct report names; null: any."
    )

    @model_validator(mode="after")
    def _decoys_expect_nothing(self) -> Expected:
        if self.report and self.category is None:
            raise ValueError("a scenario that should be reported needs the expected `category`")
        if not self.report and (self.category or self.org_unit):
            raise ValueError("a decoy (report: false) expects no category or unit")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: ShortBilingual
    brief: Bilingual = Field(description="What the participant is told happened, in Korean and English.")
    report: ScenarioReport
    expected: Expected


class LibraryReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    library: Slug = Field(description="The slug of a bundled scenario (GET /api/v1/drills/scenarios).")


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    blind: bool = Field(
        description="true: staff see the drill's cases as ordinary ones until the campaign closes."
    )
    scenarios: list[Scenario | LibraryReference] = Field(min_length=1, max_length=MAX_SCENARIOS)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _a_plausible_instant(cls, value: datetime) -> datetime:
        # Year 1 east of UTC, or 9999 west of it, has no UTC instant to store.
        try:
            in_utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("a date between the years 2000 and 2100") from None
        if not 2000 <= in_utc.year <= 2100:
            raise ValueError("a date between the years 2000 and 2100")
        return in_utc


class NumberedScenario(Scenario):
    number: int
    library: str | None = Field(None, description="The bundled scenario it was copied from.")


class LibraryScenario(Scenario):
    slug: str
    area: str


class LibraryPage(BaseModel):
    items: list[LibraryScenario]


class CampaignOut(BaseModel):
    id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    blind: bool
    state: CampaignState
    accepting_reports: bool = Field(
        description="Running and inside its window: its token and codes are accepted now."
    )
    allowed_actions: list[CampaignAction]
    version: int
    created_at: datetime
    closed_at: datetime | None
    scenarios: list[NumberedScenario]
    codes_issued: int
    drill_cases: int = Field(description="Drill cases stored now (0 once purged).")
    purged_cases: int | None = Field(description="Cases purged at close; null while open.")


class CreatedCampaign(CampaignOut):
    injection_token: str = Field(
        description="Send as `X-Drill-Token` on POST /api/v1/reports to file a drill report. "
        "Shown only here; stored as a keyed digest."
    )


class CampaignList(BaseModel):
    items: list[CampaignOut]


class ParticipantsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=MAX_CODES_PER_BATCH, strict=True)
    cohort: Cohort | None = Field(
        None, description="A unit or group label of your choosing; results are shown per cohort."
    )


class IssuedCodes(BaseModel):
    cohort: str | None
    codes: list[str] = Field(description="Single-use codes, shown only here.")


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ParticipantScenario(BaseModel):
    title: ShortBilingual
    brief: Bilingual


class ReportForm(BaseModel):
    channel: str
    language: str


class ParticipantView(BaseModel):
    campaign: str
    scenario: ParticipantScenario
    report_form: ReportForm = Field(
        description="How to file it: POST /api/v1/reports with the code as `X-Drill-Token`."
    )
    real_report_note: str = Field(
        description="A participant with something real to report files it without the code: "
        "it is then an ordinary report, and nothing links it to the code."
    )


class Decided(BaseModel):
    recorded: bool = True


# --- the scorecard, as documented (built by app/domain/drill_scorecard.py) -------------

DeadlineOutcome = Literal["met", "late", "missed", "pending"]


class DeadlineCounts(BaseModel):
    met: int
    late: int
    missed: int
    pending: int


class ScorecardCampaign(BaseModel):
    id: uuid.UUID
    name: str
    state: CampaignState
    blind: bool


class ScorecardTotals(BaseModel):
    drill_cases: int
    injected: int
    participant_reports: int
    acknowledged: int
    median_seconds_to_acknowledge: int | None
    median_seconds_to_assessment: int | None
    routed_as_expected: int
    routing_scored: int = Field(description="Cases whose routing is scored (decoys are not).")
    acknowledgement_deadline: DeadlineCounts
    feedback_deadline: DeadlineCounts
    reporter_answered: int
    confidentiality_kept: int
    simulated_effects: int
    participant_handling_counted: bool = Field(
        description="Whether participants' reports count in the handling figures above: only "
        "when there are at least `cohort_threshold` of them (injected cases always count)."
    )


class ScorecardCase(BaseModel):
    ref: int = Field(
        description="A row number: no case id, no time, ordered by scenario. Injected cases only; "
        "participants' reports are never listed one by one."
    )
    source: Literal["injection", "participant"]
    scenario: int
    state: str
    seconds_to_acknowledge: int | None
    seconds_to_assessment: int | None
    routed_as_expected: bool | None = Field(description="Null for a decoy.")
    acknowledgement_deadline: DeadlineOutcome
    feedback_deadline: DeadlineOutcome
    reporter_answered: bool
    confidentiality_kept: bool
    simulated_effects: int


class ParticipantCounts(BaseModel):
    codes_issued: int
    codes_used: int
    reports_filed: int
    no_report_decisions: int
    correct_decisions: int


class CohortCounts(ParticipantCounts):
    cohort: str = Field(description="A cohort label, or `other` for those folded together.")


class Scorecard(BaseModel):
    campaign: ScorecardCampaign
    frozen: bool = Field(description="True once the campaign closed: these numbers no longer change.")
    computed_at: datetime
    cohort_threshold: int
    totals: ScorecardTotals
    cases: list[ScorecardCase]
    participants: ParticipantCounts
    cohorts: list[CohortCounts]
