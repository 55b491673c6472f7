"""deploy/compose.yaml: one machine in production, read as Docker Compose reads it.

No Docker engine here: these check the file's promises (the settings it sets are real and
make a production configuration, images are pinned, the schema is migrated before the
service and the worker start, the containers are locked down, nothing listens beyond the
loopback) and that deploy/env.example names exactly what it interpolates.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app.domain.crypto import PrivateKey
from app.settings import Settings
from tests.test_deploy import settings_variable_names

OWN_SERVICES = ("migrate", "app", "worker")  # the containers of this project's image
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose(project_root: Path) -> dict:
    return yaml.safe_load((project_root / "deploy" / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def interpolate(value: str, given: dict[str, str]) -> str:
    """What Compose makes of a value, with `given` as deploy/.env."""

    def replace(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if name in given and (given[name] or not (operator or "").startswith(":")):
            return given[name]
        assert operator not in (":?", "?"), f"compose would refuse to start: {name} ({argument})"
        return argument or ""

    return INTERPOLATION.sub(replace, value)


def env_example(project_root: Path) -> dict[str, str]:
    lines = (project_root / "deploy" / "env.example").read_text().splitlines()
    pairs = [line.partition("=") for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value for name, _, value in pairs}


def test_the_services_set_only_variables_the_settings_read(services: dict) -> None:
    known = settings_variable_names()
    for name in OWN_SERVICES:
        assert set(services[name]["environment"]) <= known, name
        assert services[name]["environment"]["CLEANWINDOW_ENV"] == "production"


def test_the_filled_in_example_makes_a_production_configuration_the_service_accepts(
    project_root: Path, services: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = env_example(project_root) | {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "CLEANWINDOW_SECRET_KEY": secrets.token_urlsafe(48),
        "RECOVERY_PUBLIC_KEY": PrivateKey.generate().public_key.to_text(),
    }
    for name in OWN_SERVICES:
        environment = {key: interpolate(str(value), deployer) for key, value in services[name]["environment"].items()}
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key in settings_variable_names()]:
                patch.delenv(key)
            for key, value in environment.items():
                patch.setenv(key, value)
            settings = Settings(_env_file=None)
        assert settings.environment == "production" and not settings.production_problems()
        database = urlsplit(settings.database_url.get_secret_value())
        assert database.hostname == "db" and database.hostname in services
        # For a trial, mail goes to the catcher in this project.
        smtp = urlsplit(settings.smtp_url.get_secret_value())
        assert smtp.hostname == "mail" and smtp.hostname in services and settings.notify_from


def test_the_example_names_exactly_what_compose_interpolates(project_root: Path) -> None:
    text = (project_root / "deploy" / "compose.yaml").read_text()
    used = {match.group(1) for match in INTERPOLATION.finditer(text)}
    assert used == set(env_example(project_root))
    assert "$" not in INTERPOLATION.sub("", text), "every $ is an interpolation Compose understands"


def test_every_image_is_pinned_and_ours_is_built_never_pulled(project_root: Path, services: dict) -> None:
    version = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository and "/" not in tag, f"{name}: no tag"
        assert tag != "latest" and re.match(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {tag} is not a version"
    for name in OWN_SERVICES:
        service = services[name]
        assert service["image"] == f"cleanwindow:{version}"
        assert service["pull_policy"] == "build"
        assert (project_root / "deploy" / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_the_schema_is_migrated_before_the_service_and_the_worker_start(services: dict) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("app", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert "command" not in services["app"], "the app runs the image's CMD (serve)"
    assert services["worker"]["command"] == ["worker"]


def test_the_containers_of_the_image_are_read_only_without_capabilities_or_new_privileges(services: dict) -> None:
    for name in OWN_SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"] and "cap_add" not in service, name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["tmpfs"] == ["/tmp"], f"{name}: /tmp, the one place the image writes"
        assert "user" not in service, f"{name}: the image's own numeric user"
        assert "privileged" not in service
    # The image's health check asks the web port: only the app opens it.
    assert "healthcheck" not in services["app"]
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def published(port: str | dict) -> tuple[str, str]:
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port.get("published", ""))
    parts = str(port).split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])


def test_ports_are_published_on_the_loopback_only(services: dict) -> None:
    ports = {name: [published(port) for port in service.get("ports", [])] for name, service in services.items()}
    for name, mappings in ports.items():
        for host_ip, _ in mappings:
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'every address'}"
    assert ports["app"] == [("127.0.0.1", "8000")]
    assert not ports.get("db") and not ports.get("worker") and not ports.get("migrate")
    assert ports["mail"] == [("127.0.0.1", "8025")], "the catcher's web interface; SMTP stays inside"
