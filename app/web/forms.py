"""The report form: what a page sent, checked field by field, with the message shown next
to each field. Messages are catalogue ids (`N_` marks them for extraction); the template
translates them. Nothing here stores anything: the whole report travels in the form until
it is sent."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.intake import Channel, Language, Option
from app.intake.schemas import DETAILS_MAX, FIELD_MAX, SUMMARY_MAX, ReportSubmission
from app.settings import IntakeSettings


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    return message


# The fields of the report form, in page order; all are plain text.
CONTENT_FIELDS = ("summary", "details", "when", "where", "persons_involved", "how_known", "evidence")
CONTACT_FIELDS = ("name", "department", "email", "phone", "notes")
# The honeypot: a field people never see (hidden by the stylesheet, skipped by the keyboard
# and by screen readers) that scripts filling every input do fill.
HONEYPOT = "website"
# A url-encoded report form at its field limits: Hangul takes 9 bytes a character there.
FORM_MAX_BYTES = 1024 * 1024
NAME_MAX = 200
EMAIL_MAX = 320
PHONE_MAX = 50


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ReportForm:
    """What the reporter typed, kept as typed so the page can show it again."""

    channel: Channel
    values: dict[str, str]
    ticket: str
    idempotency_key: str
    errors: list[FieldError] = field(default_factory=list)

    @classmethod
    def blank(cls, channel: Channel, ticket: str) -> ReportForm:
        return cls(channel, {}, ticket, secrets.token_urlsafe(24))

    @classmethod
    def from_post(cls, channel: Channel, posted: Mapping[str, str]) -> ReportForm:
        names = ("category", "org_unit", "identify", *CONTENT_FIELDS, *CONTACT_FIELDS, HONEYPOT)
        values = {name: posted.get(name, "").replace("\r\n", "\n").strip() for name in names}
        key = posted.get("idempotency_key", "")
        if not (16 <= len(key) <= 64 and key.isascii() and key.isprintable()):
            key = secrets.token_urlsafe(24)  # a page of ours always sends one; a new one is safe
        return cls(channel, values, posted.get("ticket", ""), key)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def error_for(self, name: str) -> FieldError | None:
        return next((error for error in self.errors if error.field == name), None)

    @property
    def identified(self) -> bool:
        return self.values.get("identify") == "yes"

    @property
    def filled_honeypot(self) -> bool:
        return bool(self.values.get(HONEYPOT))

    def check(self, intake: IntakeSettings) -> None:
        """Fill `errors`, in page order, the way a person reads them."""
        errors: list[FieldError] = []
        if intake.category(self.get("category")) is None:
            errors.append(FieldError("category", N_("Choose what the report is about")))
        if self.get("org_unit") and intake.org_unit(self.get("org_unit")) is None:
            errors.append(FieldError("org_unit", N_("Choose a unit from the list, or leave it empty")))
        for name, limit, missing in (
            ("summary", SUMMARY_MAX, N_("Enter a short summary of what happened")),
            ("details", DETAILS_MAX, N_("Describe what happened")),
        ):
            if not self.get(name):
                errors.append(FieldError(name, missing))
            elif len(self.get(name)) > limit:
                errors.append(FieldError(name, N_("Use at most %(limit)s characters"), {"limit": limit}))
        for name in CONTENT_FIELDS[2:]:
            if len(self.get(name)) > FIELD_MAX:
                errors.append(FieldError(name, N_("Use at most %(limit)s characters"), {"limit": FIELD_MAX}))
        if self.get("identify") not in ("", "no", "yes"):
            errors.append(FieldError("identify", N_("Choose whether to give your contact details")))
        if self.identified:
            if not (self.get("name") or self.get("email") or self.get("phone")):
                errors.append(FieldError("name", N_("Enter at least a name, an e-mail address or a phone number")))
            for name, limit in (("name", NAME_MAX), ("department", NAME_MAX), ("email", EMAIL_MAX), ("phone", PHONE_MAX), ("notes", FIELD_MAX)):
                if len(self.get(name)) > limit:
                    errors.append(FieldError(name, N_("Use at most %(limit)s characters"), {"limit": limit}))
            if self.get("email") and "@" not in self.get("email"):
                errors.append(FieldError("email", N_("Enter an e-mail address like name@example.com")))
        self.errors = errors

    def submission(self, language: Language) -> ReportSubmission:
        """The report as intake takes it; call only once `check` found nothing."""
        content = {name: self.get(name) for name in CONTENT_FIELDS if self.get(name)}
        body: dict[str, Any] = {
            "channel": self.channel.value,
            "category": self.get("category"),
            "org_unit": self.get("org_unit") or None,
            "language": language.value,
            "content": content,
        }
        if self.identified:
            # Only what the reporter chose to give, and only because they chose to.
            body["contact"] = {name: self.get(name) for name in CONTACT_FIELDS if self.get(name)}
        return ReportSubmission.model_validate(body)


def option_label(option: Option | None, language: Language) -> str:
    if option is None:
        return ""
    return option.ko if language is Language.KO else option.en
