"""Service configuration, read from the environment and an optional `.env` file.

The contract fixes four names (`DATABASE_URL`, `CLEANWINDOW_DATA_DIR`, `POW_DIFFICULTY`,
`RECOVERY_PUBLIC_KEY`); everything else is `CLEANWINDOW_*`, with nested groups joined by
a double underscore (`CLEANWINDOW_AUTH__TOKEN_TTL_MINUTES`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.attachments import AttachmentLimits
from app.domain.clock import DEFAULT_TIMEZONE, organisation_zone
from app.domain.crypto import PublicKey
from app.domain.errors import InvalidInput
from app.domain.intake import (
    CODE_PATTERN,
    DEFAULT_CATEGORIES,
    DEFAULT_ORG_UNITS,
    LABEL_MAX_LENGTH,
    Channel,
    Option,
)
from app.domain.throttle import LoginThrottlePolicy
from app.platform.cpu import default_slots

# Recognisable on purpose: the production check refuses it, and a developer who sees it
# in a config dump knows the instance is not fit for real reports.
DEVELOPMENT_SECRET_KEY = "development-only-secret-do-not-use-in-production"
MINIMUM_SECRET_KEY_LENGTH = 32
REPORTER_LOG_MINIMUM_DELAY_SECONDS = 3600
# Words the shipped examples use for values an operator must replace.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me", "example")

_ASYNC_SCHEMES = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class AuthSettings(BaseModel):
    token_ttl_minutes: int = Field(480, ge=5, le=7 * 24 * 60)
    login_free_attempts: int = Field(5, ge=1, le=100)
    login_base_lockout_seconds: int = Field(30, ge=1)
    login_max_lockout_seconds: int = Field(15 * 60, ge=1)
    login_failure_memory_seconds: int = Field(60 * 60, ge=1)
    # Argon2id evaluations allowed at once per process (64 MiB each), and how long a
    # login may wait for one before it gets a 503.
    max_concurrent_hashes: int = Field(default_factory=default_slots, ge=1, le=64)
    hash_queue_seconds: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _memory_outlasts_the_longest_lock(self) -> AuthSettings:
        # Otherwise each long lock would wipe the count and grant fresh free attempts.
        if self.login_failure_memory_seconds < self.login_max_lockout_seconds:
            raise ValueError(
                "CLEANWINDOW_AUTH__LOGIN_FAILURE_MEMORY_SECONDS must be at least "
                "CLEANWINDOW_AUTH__LOGIN_MAX_LOCKOUT_SECONDS"
            )
        return self

    @property
    def throttle_policy(self) -> LoginThrottlePolicy:
        return LoginThrottlePolicy(
            free_attempts=self.login_free_attempts,
            base_lockout_seconds=self.login_base_lockout_seconds,
            max_lockout_seconds=self.login_max_lockout_seconds,
            failure_memory_seconds=self.login_failure_memory_seconds,
        )


class AttachmentSettings(BaseModel):
    max_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_per_case: int = Field(20, ge=0, le=1000)
    max_total_bytes_per_case: int = Field(100 * 1024 * 1024, ge=1024)
    # Plaintext held at once while a file streams in; each chunk is sealed on its own.
    chunk_bytes: int = Field(64 * 1024, ge=4096, le=4 * 1024 * 1024)
    # From the first byte of the body read to the last; a slower upload gets 408 and its
    # staged chunks are removed. At most an hour: staging older than yesterday is known dead.
    upload_timeout_seconds: int = Field(600, ge=1, le=3600)

    @property
    def limits(self) -> AttachmentLimits:
        return AttachmentLimits(self.max_bytes, self.max_per_case, self.max_total_bytes_per_case)


def _check_option(option: Option) -> Option:
    """The domain's Option is a plain dataclass; its rules are checked here, where it is read."""
    if not re.fullmatch(CODE_PATTERN, option.code):
        raise ValueError(f"a code must match {CODE_PATTERN}")
    for label in (option.ko, option.en):
        if not 1 <= len(label) <= LABEL_MAX_LENGTH:
            raise ValueError(f"a label needs 1 to {LABEL_MAX_LENGTH} characters")
    return option


ConfiguredOption = Annotated[Option, AfterValidator(_check_option)]


class IntakeSettings(BaseModel):
    categories: list[ConfiguredOption] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES), min_length=1)
    org_units: list[ConfiguredOption] = Field(default_factory=lambda: list(DEFAULT_ORG_UNITS))
    # Triage usernames that receive a channel's reports; a channel not named here goes to
    # every active triage officer with a registered key. The recovery key gets every report.
    channel_recipients: dict[Channel, list[str]] = Field(default_factory=dict)
    # At most a day: challenge digests are cleared from cases received before yesterday.
    challenge_ttl_seconds: int = Field(600, ge=30, le=24 * 3600)
    # Shared by all replicas (counted in PostgreSQL): past this many submissions in a
    # window, each new challenge asks for one more bit of work per doubling.
    # At least an hour, like log timestamps: a budget row dates the activity it counts to
    # its window.
    budget_window_seconds: int = Field(3600, ge=3600, le=24 * 3600)
    submissions_per_window: int = Field(3000, ge=1)
    max_extra_difficulty_bits: int = Field(6, ge=0, le=12)
    # Wrong receipts allowed across all replicas per window before receipt logins pause.
    receipt_failures_per_window: int = Field(1200, ge=1)
    reporter_session_minutes: int = Field(60, ge=5, le=24 * 60)
    # Receipt hashing (Argon2id, 64 MiB) gets its own budget so a staff-login flood cannot
    # starve intake, nor the reverse.
    max_concurrent_receipt_hashes: int = Field(default_factory=default_slots, ge=1, le=64)
    receipt_hash_queue_seconds: float = Field(10.0, gt=0, le=120)
    acknowledge_days: int = Field(7, ge=1, le=90)
    # Feedback to the reporter, counted from the acknowledgement (EU 2019/1937 art. 9).
    feedback_months: int = Field(3, ge=1, le=12)
    attachments: AttachmentSettings = AttachmentSettings()

    @model_validator(mode="after")
    def _codes_are_unique(self) -> IntakeSettings:
        for name, options in (("categories", self.categories), ("org_units", self.org_units)):
            codes = [option.code for option in options]
            if len(codes) != len(set(codes)):
                raise ValueError(f"CLEANWINDOW_INTAKE__{name.upper()} repeats a code")
        return self

    def category(self, code: str) -> Option | None:
        return next((option for option in self.categories if option.code == code), None)

    def org_unit(self, code: str) -> Option | None:
        return next((option for option in self.org_units if option.code == code), None)


class HttpSettings(BaseModel):
    # JSON bodies are small; uploads get their own, larger limit on their own path.
    max_body_bytes: int = Field(256 * 1024, ge=1024)


class DrillSettings(BaseModel):
    # A scorecard's cohort with fewer participant codes than this is folded into "other",
    # so no row describes a handful of people.
    cohort_threshold: int = Field(5, ge=1, le=1000)
    # A campaign its coordinator leaves open is closed by the `drills.purge` job this many
    # days after its window ended (scorecard frozen, cases purged): long enough to finish
    # handling its cases and read the scorecard, short enough that a blind drill's cases do
    # not sit in the real queue for months.
    close_after_days: int = Field(30, ge=1, le=365)


class WebSettings(BaseModel):
    # A report form sent sooner than this after the page was served is a script's.
    ticket_min_seconds: int = Field(5, ge=0, le=600)
    # Long enough to write a report and upload evidence slowly over Tor.
    ticket_max_hours: int = Field(12, ge=1, le=72)
    # Reports from pages without proof of work, per budget window, all replicas: past it,
    # such submissions are refused until the window ends (proof of work still works).
    form_submissions_per_window: int = Field(600, ge=1, le=1_000_000)


class WebhookEndpoint(BaseModel):
    """A receiver of content-free event notices, signed by the Standard Webhooks scheme."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    url: str = Field(pattern=r"^https?://")

    @field_validator("url")
    @classmethod
    def _is_a_usable_url(cls, value: str) -> str:
        import httpx

        try:
            parsed = httpx.URL(value)
        except httpx.InvalidURL as error:
            raise ValueError(f"not a usable URL: {error}") from None
        if not parsed.host:
            raise ValueError("a webhook URL needs a host")
        return value

    @property
    def is_plain_http_off_this_host(self) -> bool:
        import httpx

        host = httpx.URL(self.url).host
        return self.url.startswith("http://") and host not in ("127.0.0.1", "::1", "localhost")
    # `whsec_` followed by base64, as the receiver's Standard Webhooks library expects.
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _is_a_standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        import base64
        import binascii

        raw = value.get_secret_value().removeprefix("whsec_")
        try:
            decoded = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
        if len(decoded) < 24:
            raise ValueError("a webhook secret needs at least 24 random bytes")
        return value


class NotifySettings(BaseModel):
    # Where a notice sends staff: the queue (a staff tool's address, or none: the notice
    # then names `cleanwindow cases list`).
    queue_url: str | None = Field(None, pattern=r"^https?://")
    webhooks: list[WebhookEndpoint] = Field(default_factory=list)
    # Added to each new-report batch's send time, at random, so the batch boundary does
    # not become a clock either.
    batch_jitter_seconds: int = Field(300, ge=0, le=3600)
    # A delivery is tried this many times, waiting base * 2^attempt (capped) between tries,
    # then kept as a dead letter for an administrator to see.
    max_attempts: int = Field(8, ge=1, le=50)
    retry_base_seconds: float = Field(60.0, ge=0, le=3600)
    retry_max_seconds: float = Field(6 * 3600.0, ge=1, le=7 * 24 * 3600)
    send_timeout_seconds: float = Field(30.0, gt=0, le=300)
    # Reminders before a deadline: two days leaves a week's acknowledgement (art. 9(1)(b):
    # seven days) time to act; two weeks leaves the three-month feedback time to write it.
    acknowledge_reminder_days: int = Field(2, ge=0, le=30)
    feedback_reminder_days: int = Field(14, ge=0, le=60)


class RetentionSettings(BaseModel):
    """Days a closed case's content is kept after closing, by outcome (docs/retention.md)."""

    # CNIL (référentiel alertes professionnelles, 2019): a report given no follow-up is
    # deleted within two months of the end of its admissibility checks.
    dismissed_days: int = Field(60, ge=1, le=36500)
    # Investigated and not borne out: no proceedings follow, so the same two months.
    unsubstantiated_days: int = Field(60, ge=1, le=36500)
    # Handed to an outside authority, which keeps its own file: a year to answer its
    # questions.
    referred_days: int = Field(365, ge=1, le=36500)
    # Disciplinary action for money-related misconduct can be taken for five years
    # (State Public Officials Act art. 83-2); EU 2019/1937 art. 18 allows keeping records
    # while proceedings may still need them.
    substantiated_days: int = Field(5 * 365, ge=1, le=36500)


class JobSettings(BaseModel):
    # Run the background jobs inside `cleanwindow serve`: unset means yes in development
    # (one command starts everything) and no in production (run `cleanwindow worker`).
    in_serve: bool | None = None
    # Cron expressions (5 fields, or 6 with seconds last) replacing a job's default
    # schedule, by job name: {"notifications.deliver": "* * * * * */10"}.
    schedules: dict[str, str] = Field(default_factory=dict)
    # Jobs one worker runs at once.
    concurrency: int = Field(2, ge=1, le=32)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLEANWINDOW_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "production"] = Field(
        "development", validation_alias=AliasChoices("CLEANWINDOW_ENV", "CLEANWINDOW_ENVIRONMENT")
    )
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Log lines about reporter-facing requests are held back and written in shuffled
    # batches at this interval, so their write time reveals nothing; 0 writes at once.
    reporter_log_delay_seconds: int = Field(3600, ge=0)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    # The organisation's calendar: dates of receipt, deadlines and "overdue" are dates in
    # this IANA zone; instants stay UTC.
    timezone: str = DEFAULT_TIMEZONE
    # Bearer token Prometheus must send for /metrics; unset, /metrics is not served (404).
    metrics_token: SecretStr | None = None

    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    data_dir: Path = Field(Path(".cleanwindow"), validation_alias="CLEANWINDOW_DATA_DIR")
    pow_difficulty: int = Field(20, ge=0, le=32, validation_alias="POW_DIFFICULTY")
    recovery_public_key: str | None = Field(None, validation_alias="RECOVERY_PUBLIC_KEY")

    # `serve` migrates the schema before it listens (the one-command first run, compose).
    # Kubernetes turns it off: a migration Job runs as the database owner before the
    # rollout, and the replicas connect as a role that may not change the schema.
    migrate_on_start: bool = True

    database_pool_size: int = Field(10, ge=1, le=200)
    # How long a request waits for a database connection (a pooled one, or a new one to
    # the server) before it is answered 503 with Retry-After.
    database_pool_timeout_seconds: float = Field(10.0, gt=0, le=300)

    # E-mail to staff: `smtp://[user:password@]host:port` (STARTTLS when offered) or
    # `smtps://` (TLS from the start); unset, e-mail is off.
    smtp_url: SecretStr | None = Field(None, validation_alias="SMTP_URL")
    notify_from: str | None = Field(None, validation_alias="NOTIFY_FROM")
    # New-report and reporter-message notices are held and sent together at this interval
    # (plus jitter), so a mail's time dates a submission only to its batch.
    notify_batch_seconds: int = Field(3600, ge=0, le=7 * 24 * 3600, validation_alias="NOTIFY_BATCH_SECONDS")

    auth: AuthSettings = AuthSettings()
    notify: NotifySettings = NotifySettings()
    retention: RetentionSettings = RetentionSettings()
    jobs: JobSettings = JobSettings()
    intake: IntakeSettings = IntakeSettings()
    http: HttpSettings = HttpSettings()
    drills: DrillSettings = DrillSettings()
    web: WebSettings = WebSettings()

    @field_validator("database_url", mode="before")
    @classmethod
    def _use_the_async_driver(cls, value: object) -> object:
        if value is None or value == "":
            return None
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        scheme, separator, rest = raw.partition("://")
        if not separator or scheme not in _ASYNC_SCHEMES:
            raise ValueError(
                "DATABASE_URL must be a PostgreSQL URL such as "
                "postgresql+asyncpg://user:password@host:5432/dbname"
            )
        return f"{_ASYNC_SCHEMES[scheme]}://{rest}"

    @field_validator("timezone")
    @classmethod
    def _is_an_iana_zone(cls, value: str) -> str:
        try:
            organisation_zone(value)
        except ValueError as error:
            raise ValueError(f"CLEANWINDOW_TIMEZONE: {error}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return organisation_zone(self.timezone)

    @field_validator("smtp_url")
    @classmethod
    def _is_an_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme, separator, rest = value.get_secret_value().partition("://")
            if scheme not in ("smtp", "smtps") or not separator or not rest:
                raise ValueError("SMTP_URL must look like smtp://[user:password@]host:port or smtps://...")
        return value

    @field_validator("notify_from")
    @classmethod
    def _is_a_sender_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from email.utils import parseaddr

        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            raise ValueError("NOTIFY_FROM must not contain control characters")
        _, address = parseaddr(value)
        if "@" not in address or " " in address:
            raise ValueError("NOTIFY_FROM must be an address (cw@agency.example) or Name <cw@agency.example>")
        return value

    @property
    def sender_domain(self) -> str:
        from email.utils import parseaddr

        return parseaddr(self.notify_from or "")[1].rpartition("@")[2].lower() or "cleanwindow.invalid"

    @model_validator(mode="after")
    def _email_needs_a_sender(self) -> Settings:
        if self.smtp_url is not None and not self.notify_from:
            raise ValueError("SMTP_URL is set but NOTIFY_FROM is not: notices need a sender address")
        return self

    @property
    def jobs_in_serve(self) -> bool:
        return self.jobs.in_serve if self.jobs.in_serve is not None else self.environment == "development"

    @field_validator("recovery_public_key", "metrics_token", "smtp_url", "notify_from", mode="before")
    @classmethod
    def _blank_means_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def recovery_key(self) -> PublicKey | None:
        """Parsed (and test-sealed) once per process, not on every submission."""
        return None if self.recovery_public_key is None else _parse_public_key(self.recovery_public_key)

    @model_validator(mode="after")
    def _refuse_unusable_values(self) -> Settings:
        # One check for every mode, so that production names all its reasons at once.
        problems = self.recovery_key_problems()
        if self.environment == "production":
            problems += self.production_problems()
        if problems:
            if self.environment == "production":
                problems[0] = "refusing to run in production with unsafe settings: " + problems[0]
            raise ValueError("; ".join(problems))
        return self

    def recovery_key_problems(self) -> list[str]:
        """A recovery key that is not a usable public key is refused in any mode."""
        if self.recovery_public_key is None:
            return []
        try:
            _parse_public_key(self.recovery_public_key)
        except InvalidInput as error:
            return [f"RECOVERY_PUBLIC_KEY: {error.detail}"]
        return []

    def production_problems(self) -> list[str]:
        problems = []
        secret = self.secret_key.get_secret_value()
        if secret == DEVELOPMENT_SECRET_KEY:
            problems.append("CLEANWINDOW_SECRET_KEY is the development default")
        elif any(marker in secret.lower() for marker in PLACEHOLDER_MARKERS):
            problems.append("CLEANWINDOW_SECRET_KEY is still the placeholder from the examples")
        elif len(secret) < MINIMUM_SECRET_KEY_LENGTH:
            problems.append(
                f"CLEANWINDOW_SECRET_KEY must be at least {MINIMUM_SECRET_KEY_LENGTH} characters"
            )
        if self.metrics_token is not None:
            token = self.metrics_token.get_secret_value()
            if any(marker in token.lower() for marker in PLACEHOLDER_MARKERS):
                problems.append("CLEANWINDOW_METRICS_TOKEN is still the placeholder from the examples")
            elif len(token) < MINIMUM_SECRET_KEY_LENGTH:
                problems.append(
                    f"CLEANWINDOW_METRICS_TOKEN must be at least {MINIMUM_SECRET_KEY_LENGTH} characters"
                )
        if self.debug:
            problems.append("CLEANWINDOW_DEBUG is on")
        if self.database_url is None:
            problems.append(
                "DATABASE_URL is unset (the embedded PostgreSQL is for development only)"
            )
        if self.reporter_log_delay_seconds < REPORTER_LOG_MINIMUM_DELAY_SECONDS:
            problems.append(
                "CLEANWINDOW_REPORTER_LOG_DELAY_SECONDS is below an hour, so log write times "
                "would date reporters' requests more precisely than their hour"
            )
        if self.recovery_public_key is None:
            problems.append(
                "RECOVERY_PUBLIC_KEY is unset, so a report would be lost with its readers' keys "
                "(make one offline with `cleanwindow keys generate`)"
            )
        if self.pow_difficulty == 0:
            problems.append("POW_DIFFICULTY is 0, which leaves anonymous intake without abuse control")
        plain = [hook.name for hook in self.notify.webhooks if hook.is_plain_http_off_this_host]
        if plain:
            problems.append(
                f"webhooks {plain} use plain http:// to another host, so case ids would cross the network unencrypted"
            )
        return problems

    @property
    def secret_key_bytes(self) -> bytes:
        return self.secret_key.get_secret_value().encode()

    def with_database_url(self, url: str) -> Settings:
        return self.model_copy(update={"database_url": SecretStr(url)})


@lru_cache(maxsize=8)
def _parse_public_key(text: str) -> PublicKey:
    # Keyed by the text rather than kept on the instance: `model_copy(update=...)` (the
    # development recovery key in `serve`) skips validators and would keep a stale copy.
    return PublicKey.from_text(text)
