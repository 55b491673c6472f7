"""The deployment files agree with the service: probe paths exist, variable names are real."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.main import create_app
from app.settings import Settings

CONTRACT_VARIABLES = {"DATABASE_URL", "CLEANWINDOW_DATA_DIR", "POW_DIFFICULTY", "RECOVERY_PUBLIC_KEY"}


def settings_variable_names() -> set[str]:
    names = set(CONTRACT_VARIABLES) | {"CLEANWINDOW_ENV"}
    for name, field in Settings.model_fields.items():
        if field.validation_alias is None:
            names.add(f"CLEANWINDOW_{name.upper()}")
    return names


def kubernetes_documents(project_root: Path) -> list[dict]:
    documents = []
    for path in sorted((project_root / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def test_kubernetes_probes_point_at_real_endpoints(project_root: Path) -> None:
    paths = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    [deployment] = [doc for doc in kubernetes_documents(project_root) if doc.get("kind") == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in paths
    assert deployment["spec"]["replicas"] >= 2


def test_deploy_files_only_set_variables_the_service_reads(project_root: Path) -> None:
    known = settings_variable_names()
    [deployment] = [doc for doc in kubernetes_documents(project_root) if doc.get("kind") == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert {item["name"] for item in container["env"]} <= known
    [secret] = [doc for doc in kubernetes_documents(project_root) if doc.get("kind") == "Secret"]
    assert set(secret["stringData"]) <= known

    compose = yaml.safe_load((project_root / "deploy" / "compose.yaml").read_text())
    assert set(compose["services"]["app"]["environment"]) <= known
    assert compose["services"]["app"]["environment"]["CLEANWINDOW_ENV"] == "production"


def test_the_prometheus_example_scrapes_metrics_with_the_bearer_token(project_root: Path) -> None:
    paths = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    config = yaml.safe_load((project_root / "deploy" / "prometheus.example.yml").read_text())
    jobs = config["scrape_configs"]
    assert jobs
    for job in jobs:
        assert job["metrics_path"] in paths
        assert job["authorization"]["type"] == "Bearer"
        assert job["authorization"]["credentials_file"]  # the token itself never in the file
        assert "credentials" not in job["authorization"]
    assert "CLEANWINDOW_METRICS_TOKEN" in settings_variable_names()
