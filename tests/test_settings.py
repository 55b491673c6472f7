"""Configuration: the contract's variable names, and refusal of unsafe production values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.domain.crypto import PrivateKey, PublicKey
from app.settings import DEVELOPMENT_SECRET_KEY, Settings

RECOVERY_PUBLIC_KEY = PrivateKey.generate().public_key.to_text()
SAFE_PRODUCTION = {
    "CLEANWINDOW_ENV": "production",
    "CLEANWINDOW_SECRET_KEY": "s" * 48,
    "DATABASE_URL": "postgresql://cw:pw@db.internal:5432/cleanwindow",
    "POW_DIFFICULTY": "20",
    "RECOVERY_PUBLIC_KEY": RECOVERY_PUBLIC_KEY,
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("CLEANWINDOW_") or name in {
            "DATABASE_URL", "POW_DIFFICULTY", "RECOVERY_PUBLIC_KEY", "SMTP_URL", "NOTIFY_FROM", "NOTIFY_BATCH_SECONDS",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    return monkeypatch


def test_the_contract_variable_names_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@h:5432/d")
    clean_env.setenv("CLEANWINDOW_DATA_DIR", "/var/lib/cw")
    clean_env.setenv("POW_DIFFICULTY", "0")
    clean_env.setenv("RECOVERY_PUBLIC_KEY", RECOVERY_PUBLIC_KEY)
    clean_env.setenv("CLEANWINDOW_AUTH__TOKEN_TTL_MINUTES", "60")
    settings = Settings()
    assert settings.database_url.get_secret_value() == "postgresql+asyncpg://u:p@h:5432/d"
    assert settings.data_dir == Path("/var/lib/cw")
    assert settings.pow_difficulty == 0
    assert settings.recovery_public_key == RECOVERY_PUBLIC_KEY
    assert settings.auth.token_ttl_minutes == 60


def test_a_dotenv_file_is_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POW_DIFFICULTY=7\nCLEANWINDOW_LOG_LEVEL=WARNING\n")
    settings = Settings()
    assert settings.pow_difficulty == 7
    assert settings.log_level == "WARNING"


def test_development_defaults_need_nothing(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.environment == "development"
    assert settings.database_url is None  # the embedded PostgreSQL will be used


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_postgres_urls_are_given_the_async_driver(clean_env: pytest.MonkeyPatch, scheme: str) -> None:
    clean_env.setenv("DATABASE_URL", f"{scheme}://u:p@h/d")
    assert Settings().database_url.get_secret_value() == "postgresql+asyncpg://u:p@h/d"


@pytest.mark.parametrize("url", ["mysql://u:p@h/d", "sqlite:///x.db", "not a url"])
def test_non_postgres_urls_are_refused(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("DATABASE_URL", url)
    with pytest.raises(ValidationError, match="PostgreSQL URL"):
        Settings()


def test_the_database_password_is_not_printed_with_the_settings(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u:hunter2secret@h/d")
    assert "hunter2secret" not in repr(Settings())


def test_safe_production_settings_are_accepted(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        clean_env.setenv(name, value)
    assert Settings().environment == "production"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"CLEANWINDOW_SECRET_KEY": DEVELOPMENT_SECRET_KEY}, "development default"),
        ({"CLEANWINDOW_SECRET_KEY": "too-short"}, "at least 32 characters"),
        ({"CLEANWINDOW_DEBUG": "true"}, "CLEANWINDOW_DEBUG is on"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is unset"),
        ({"POW_DIFFICULTY": "0"}, "POW_DIFFICULTY is 0"),
        ({"CLEANWINDOW_SECRET_KEY": "change-me-to-at-least-32-random-characters"}, "placeholder"),
        ({"CLEANWINDOW_REPORTER_LOG_DELAY_SECONDS": "60"}, "below an hour"),
        ({"RECOVERY_PUBLIC_KEY": ""}, "RECOVERY_PUBLIC_KEY is unset"),
        ({"CLEANWINDOW_METRICS_TOKEN": "short-token"}, "CLEANWINDOW_METRICS_TOKEN must be at least 32"),
        ({"CLEANWINDOW_METRICS_TOKEN": "CHANGE-ME-to-at-least-32-random-characters"}, "METRICS_TOKEN is still the placeholder"),
    ],
)
def test_unsafe_production_values_are_refused_with_the_reason(
    clean_env: pytest.MonkeyPatch, override: dict[str, str], reason: str
) -> None:
    for name, value in {**SAFE_PRODUCTION, **override}.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_the_service_refuses_to_start_in_production_with_the_default_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    env.update({"CLEANWINDOW_ENV": "production", "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/d"})
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "CLEANWINDOW_SECRET_KEY is the development default" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_reason_is_named_at_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CLEANWINDOW_ENV", "production")
    clean_env.setenv("CLEANWINDOW_DEBUG", "true")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    for reason in ("development default", "DEBUG is on", "DATABASE_URL is unset"):
        assert reason in message


def test_a_bad_recovery_key_does_not_hide_the_other_production_reasons(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        clean_env.setenv(name, value)
    clean_env.setenv("RECOVERY_PUBLIC_KEY", "cwpk1_not-a-key")
    clean_env.setenv("CLEANWINDOW_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
    clean_env.setenv("CLEANWINDOW_DEBUG", "true")
    clean_env.setenv("POW_DIFFICULTY", "0")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    for reason in ("RECOVERY_PUBLIC_KEY", "development default", "DEBUG is on", "POW_DIFFICULTY is 0"):
        assert reason in message


def test_the_recovery_key_is_parsed_once_not_on_every_use(
    clean_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = PrivateKey.generate().public_key.to_text()
    clean_env.setenv("RECOVERY_PUBLIC_KEY", text)
    settings = Settings()
    parsed: list[str] = []
    original = PublicKey.from_text.__func__

    def counting_from_text(cls, value: str) -> PublicKey:
        parsed.append(value)
        return original(cls, value)

    monkeypatch.setattr(PublicKey, "from_text", classmethod(counting_from_text))
    keys = [settings.recovery_key for _ in range(5)]
    # The copy `serve` makes with the development key skips validation; it must not
    # keep the old key.
    other = PrivateKey.generate().public_key
    copied = settings.model_copy(update={"recovery_public_key": other.to_text()})
    assert parsed.count(text) == 0  # parsed when the settings were validated, not since
    assert all(key is keys[0] for key in keys)
    assert keys[0].to_text() == text
    assert copied.recovery_key == other


def test_only_development_and_production_modes_exist(clean_env: pytest.MonkeyPatch) -> None:
    # A third mode would be a way around the production checks.
    clean_env.setenv("CLEANWINDOW_ENV", "test")
    with pytest.raises(ValidationError):
        Settings()


def test_a_blank_metrics_token_counts_as_unset_and_a_long_one_is_accepted(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CLEANWINDOW_METRICS_TOKEN", " ")
    assert Settings().metrics_token is None
    clean_env.setenv("CLEANWINDOW_METRICS_TOKEN", "m" * 40)
    assert Settings().metrics_token.get_secret_value() == "m" * 40


def test_a_blank_recovery_key_counts_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RECOVERY_PUBLIC_KEY", "  ")
    assert Settings().recovery_public_key is None


def test_the_shipped_examples_hold_no_usable_secret(project_root: Path) -> None:
    example = (project_root / "deploy" / "env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert values["CLEANWINDOW_SECRET_KEY"] == ""
    assert values["POSTGRES_PASSWORD"] == ""
    assert values["CLEANWINDOW_METRICS_TOKEN"] == ""


def test_failures_must_be_remembered_longer_than_the_longest_lock(clean_env: pytest.MonkeyPatch) -> None:
    # Otherwise every long lock would wipe the count and hand out fresh free guesses.
    clean_env.setenv("CLEANWINDOW_AUTH__LOGIN_MAX_LOCKOUT_SECONDS", "900")
    clean_env.setenv("CLEANWINDOW_AUTH__LOGIN_FAILURE_MEMORY_SECONDS", "600")
    with pytest.raises(ValidationError, match="at least"):
        Settings()


@pytest.mark.parametrize(
    "value",
    ["recovery-public-key", "cwpk1_", "cwpk1_" + "A" * 100, RECOVERY_PUBLIC_KEY[:-4]],
)
def test_a_recovery_key_that_is_not_a_public_key_is_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("RECOVERY_PUBLIC_KEY", value)
    with pytest.raises(ValidationError, match="RECOVERY_PUBLIC_KEY"):
        Settings()


def test_intake_categories_are_configurable_and_codes_unique(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(
        "CLEANWINDOW_INTAKE__CATEGORIES",
        '[{"code": "bribery", "ko": "뇌물", "en": "Bribery"}, {"code": "other", "ko": "기타", "en": "Other"}]',
    )
    assert [option.code for option in Settings().intake.categories] == ["bribery", "other"]
    clean_env.setenv(
        "CLEANWINDOW_INTAKE__CATEGORIES",
        '[{"code": "other", "ko": "기타", "en": "Other"}, {"code": "other", "ko": "기타", "en": "Other"}]',
    )
    with pytest.raises(ValidationError, match="repeats a code"):
        Settings()


def test_the_organisation_s_time_zone_defaults_to_seoul_and_is_configurable(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().timezone == "Asia/Seoul"
    assert Settings().zone.key == "Asia/Seoul"
    clean_env.setenv("CLEANWINDOW_TIMEZONE", "Europe/Paris")
    assert Settings().zone.key == "Europe/Paris"


@pytest.mark.parametrize("value", ["Mars/Olympus_Mons", "KST", "+09:00", "", "localtime", "../etc/passwd"])
def test_a_time_zone_that_is_not_an_iana_zone_is_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("CLEANWINDOW_TIMEZONE", value)
    with pytest.raises(ValidationError, match="CLEANWINDOW_TIMEZONE: .* is not an IANA time zone"):
        Settings()


def test_the_service_refuses_to_start_with_an_unknown_time_zone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANWINDOW_") and k != "DATABASE_URL"}
    env.update({"CLEANWINDOW_TIMEZONE": "Asia/Seul", "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/d"})
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "CLEANWINDOW_TIMEZONE: 'Asia/Seul' is not an IANA time zone" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "option",
    [
        {"code": "Bribery", "ko": "뇌물", "en": "Bribery"},  # not a lower-case code
        {"code": "bribery", "ko": "", "en": "Bribery"},  # an empty label
        {"code": "bribery", "ko": "뇌물", "en": "B" * 201},  # a label too long
        {"code": "bribery", "ko": "뇌물"},  # a label missing
    ],
)
def test_intake_options_are_checked_where_they_are_configured(
    clean_env: pytest.MonkeyPatch, option: dict[str, str]
) -> None:
    # The domain's Option is a plain dataclass; the settings hold its rules.
    clean_env.setenv("CLEANWINDOW_INTAKE__CATEGORIES", json.dumps([option]))
    with pytest.raises(ValidationError):
        Settings()


def test_the_notification_variable_names_are_read(clean_env: pytest.MonkeyPatch) -> None:
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAx"
    clean_env.setenv("SMTP_URL", "smtps://notices:p%40ss@mail.agency.example:465")
    clean_env.setenv("NOTIFY_FROM", "cleanwindow@agency.example")
    clean_env.setenv("NOTIFY_BATCH_SECONDS", "0")
    clean_env.setenv(
        "CLEANWINDOW_NOTIFY__WEBHOOKS", json.dumps([{"name": "tracker", "url": "https://t.example/h", "secret": secret}])
    )
    clean_env.setenv("CLEANWINDOW_JOBS__SCHEDULES", json.dumps({"notifications.deliver": "* * * * * */5"}))
    settings = Settings()
    assert settings.smtp_url.get_secret_value().startswith("smtps://")
    assert settings.notify_from == "cleanwindow@agency.example" and settings.notify_batch_seconds == 0
    assert settings.notify.webhooks[0].name == "tracker"
    assert settings.jobs.schedules == {"notifications.deliver": "* * * * * */5"}
    assert settings.jobs_in_serve  # development runs the jobs inside serve


def test_notification_defaults_batch_hourly_with_e_mail_off(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.smtp_url is None and settings.notify_batch_seconds == 3600
    for name, value in SAFE_PRODUCTION.items():
        clean_env.setenv(name, value)
    assert not Settings().jobs_in_serve  # production runs `cleanwindow worker` apart


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SMTP_URL": "smtp://mail.agency.example:25"}, "NOTIFY_FROM is not"),
        ({"SMTP_URL": "http://mail.agency.example", "NOTIFY_FROM": "a@b.example"}, "smtp://"),
        ({"NOTIFY_BATCH_SECONDS": "-1"}, "greater than or equal to 0"),
        (
            {"CLEANWINDOW_NOTIFY__WEBHOOKS": '[{"name": "t", "url": "https://t.example", "secret": "whsec_c2hvcnQ="}]'},
            "at least 24 random bytes",
        ),
        (
            {"CLEANWINDOW_NOTIFY__WEBHOOKS": '[{"name": "t", "url": "https://t.example", "secret": "whsec_***"}]'},
            "whsec_ followed by base64",
        ),
        ({"CLEANWINDOW_NOTIFY__WEBHOOKS": '[{"name": "t", "url": "ftp://t.example", "secret": "x"}]'}, "url"),
    ],
)
def test_unusable_notification_settings_are_refused(clean_env: pytest.MonkeyPatch, variables: dict, message: str) -> None:
    for name, value in variables.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(
    "sender", ["cw@agency.example\r\nBcc: everyone@agency.example", "not an address", "cw@agency.example\x07"]
)
def test_a_sender_that_could_break_a_mail_header_is_refused(clean_env: pytest.MonkeyPatch, sender: str) -> None:
    clean_env.setenv("SMTP_URL", "smtp://mail.agency.example:25")
    clean_env.setenv("NOTIFY_FROM", sender)
    with pytest.raises(ValidationError, match="NOTIFY_FROM"):
        Settings()


def test_a_named_sender_gives_its_domain_to_the_message_ids(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SMTP_URL", "smtp://mail.agency.example:25")
    clean_env.setenv("NOTIFY_FROM", "Clean Window <CW@Notices.Agency.example>")
    assert Settings().sender_domain == "notices.agency.example"


def test_production_refuses_a_plain_http_webhook_to_another_host(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in SAFE_PRODUCTION.items():
        clean_env.setenv(name, value)
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAx"
    clean_env.setenv(
        "CLEANWINDOW_NOTIFY__WEBHOOKS",
        json.dumps([{"name": "tracker", "url": "http://tickets.agency.example/h", "secret": secret}]),
    )
    with pytest.raises(ValidationError, match="plain http"):
        Settings()
    clean_env.setenv(
        "CLEANWINDOW_NOTIFY__WEBHOOKS", json.dumps([{"name": "tracker", "url": "http://127.0.0.1:9000/h", "secret": secret}])
    )
    assert Settings().notify.webhooks[0].name == "tracker"
