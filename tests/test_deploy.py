"""The deployment files agree with the service: probe paths exist, variable names are real."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from app.main import create_app
from app.settings import Settings

CONTRACT_VARIABLES = {
    "DATABASE_URL", "CLEANWINDOW_DATA_DIR", "POW_DIFFICULTY", "RECOVERY_PUBLIC_KEY",
    "SMTP_URL", "NOTIFY_FROM", "NOTIFY_BATCH_SECONDS",
}
# Read by the database drivers themselves (asyncpg and libpq) when DATABASE_URL carries
# no password: the Kubernetes Deployments take the restricted role's password from the
# Secret CloudNativePG sets it from.
DRIVER_VARIABLES = {"PGPASSWORD"}


def settings_variable_names() -> set[str]:
    names = set(CONTRACT_VARIABLES) | DRIVER_VARIABLES | {"CLEANWINDOW_ENV"}
    for name, field in Settings.model_fields.items():
        if field.validation_alias is None:
            names.add(f"CLEANWINDOW_{name.upper()}")
            names |= _nested_names(f"CLEANWINDOW_{name.upper()}", field.annotation)
    return names


def _nested_names(prefix: str, annotation: object) -> set[str]:
    """`CLEANWINDOW_AUTH__TOKEN_TTL_MINUTES` and the like: pydantic-settings joins nested
    groups with a double underscore."""
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return set()
    names = set()
    for name, field in annotation.model_fields.items():
        names.add(f"{prefix}__{name.upper()}")
        names |= _nested_names(f"{prefix}__{name.upper()}", field.annotation)
    return names


def kubernetes_documents(project_root: Path) -> list[dict]:
    documents = []
    for path in sorted((project_root / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def deployment_named(project_root: Path, name: str) -> dict:
    [deployment] = [
        doc for doc in kubernetes_documents(project_root) if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == name
    ]
    return deployment


def test_kubernetes_probes_point_at_real_endpoints(project_root: Path) -> None:
    paths = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    deployment = deployment_named(project_root, "cleanwindow")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in paths
    assert deployment["spec"]["replicas"] >= 2


def test_deploy_files_only_set_variables_the_service_reads(project_root: Path) -> None:
    known = settings_variable_names()
    for name in ("cleanwindow", "cleanwindow-worker"):
        [container] = deployment_named(project_root, name)["spec"]["template"]["spec"]["containers"]
        assert {item["name"] for item in container["env"]} <= known
    [secret] = [
        doc for doc in kubernetes_documents(project_root)
        if doc.get("kind") == "Secret" and doc["metadata"]["name"] == "cleanwindow"
    ]
    assert set(secret["stringData"]) <= known

    compose = yaml.safe_load((project_root / "deploy" / "compose.yaml").read_text())
    for service in ("app", "worker"):
        assert set(compose["services"][service]["environment"]) <= known
        assert compose["services"][service]["environment"]["CLEANWINDOW_ENV"] == "production"
    assert compose["services"]["worker"]["command"] == ["worker"]


def test_the_workers_run_apart_from_the_web_replicas_and_receive_no_traffic(project_root: Path) -> None:
    documents = kubernetes_documents(project_root)
    web, worker = deployment_named(project_root, "cleanwindow"), deployment_named(project_root, "cleanwindow-worker")
    [container] = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"] and worker["spec"]["replicas"] >= 2
    web_selector = web["spec"]["selector"]["matchLabels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    # Two Deployments whose selectors overlap would fight over each other's pods.
    assert not set(web_selector.items()) <= set(worker_labels.items())
    [service] = [doc for doc in documents if doc.get("kind") == "Service"]
    assert not set(service["spec"]["selector"].items()) <= set(worker_labels.items())
    assert set(service["spec"]["selector"].items()) <= set(web["spec"]["template"]["metadata"]["labels"].items())
    kustomization = yaml.safe_load((project_root / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    assert "worker.yaml" in kustomization["resources"]


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
