"""The Kubernetes manifests: every overlay rendered by kustomize v5, validated against the
Kubernetes schemas (strict), scanned by checkov, linted by yamllint, and held to the
deployment's contract (probes, shutdown arithmetic, hardening, the database URL from a
Secret, migrations in an init container) read from the rendered output. A render without a
database has none of the database's objects.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import ENV_PREFIX, PACKAGE, render, run
from support.containers import kubectl

APP = PACKAGE.replace("_", "-")
OVERLAYS = ("dev", "prod")
# preStop sleep (Kubernetes >= 1.30) is the oldest feature used; the newest is the schema
# version bundled with kubernetes-validate (its default).
KUBERNETES_VERSIONS = ("1.30.0", None)
# Checks skipped on purpose, each with its justification next to the annotation.
EXPECTED_SKIPS = {
    "dev": {"CKV_K8S_35", "CKV_K8S_43"},
    "prod": {"CKV_K8S_35"},
}
# What the lifespan shutdown (closing the HTTP client, disposing of the database pool) may
# take, on top of the drain.
LIFESPAN_SHUTDOWN_BUDGET = 5
DATABASE_URL = f"{ENV_PREFIX}DATABASE_URL"
DATABASE_SECRET = {"name": f"{APP}-database", "key": "url"}
POSTGRESQL_PORT = 5432


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Kubernetes renders default to (and can only have) PostgreSQL.
    project = render(tmp_path_factory.mktemp("kubernetes") / "acme-orders", deploy_targets=["kubernetes"])
    assert "database: postgresql" in (project / ".copier-answers.yml").read_text()
    return project


def kustomize(project: Path, output: Path, kustomizations: tuple[str, ...]) -> dict[str, Path]:
    """Each kustomization as `kubectl kustomize` renders it, in a file."""
    files = {}
    for name in kustomizations:
        directory = "base" if name == "base" else f"overlays/{name}"
        result = run([str(kubectl()), "kustomize", f"deploy/kubernetes/{directory}"], cwd=project)
        files[name] = output / f"{name}.yaml"
        files[name].write_text(result.stdout)
    return files


@pytest.fixture(scope="module")
def rendered(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each overlay, and the base, as `kubectl kustomize` renders it."""
    return kustomize(project, tmp_path_factory.mktemp("rendered"), ("base", *OVERLAYS))


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [document for document in docs if document["kind"] == kind]
    return found


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in docs if document["kind"] == kind]


def values(container: dict[str, Any]) -> dict[str, str]:
    """The container's literal `env` values (secret references left out)."""
    return {variable["name"]: variable["value"] for variable in container.get("env", []) if "value" in variable}


def secret_references(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }


def egress_ports(policy: dict[str, Any]) -> set[tuple[int | str, str]]:
    return {(port["port"], port["protocol"]) for rule in policy["spec"]["egress"] for port in rule.get("ports", [])}


def test_kustomize_is_v5() -> None:
    version = subprocess.run(
        [str(kubectl()), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert json.loads(version.stdout)["kustomizeVersion"].startswith("v5.")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda version: version or "latest")
def test_overlay_is_valid_kubernetes(rendered: dict[str, Path], overlay: str, version: str | None) -> None:
    command = ["kubernetes-validate", "--strict", "--quiet"]
    if version:
        command += ["--kubernetes-version", version]
    run([*command, str(rendered[overlay])], cwd=rendered[overlay].parent)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_checkov(rendered: dict[str, Path], overlay: str) -> None:
    result = run(
        ["checkov", "--skip-download", "--framework", "kubernetes", "-f", str(rendered[overlay]), "-o", "json"],
        cwd=rendered[overlay].parent,
    )
    report = json.loads(result.stdout)
    failed = [(check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 50
    skipped = report["results"]["skipped_checks"]
    assert {check["check_id"] for check in skipped} == EXPECTED_SKIPS[overlay]
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, f"unjustified skip {check['check_id']}"


YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 120}}}"


def test_manifests_pass_yamllint(project: Path) -> None:
    run(["yamllint", "--strict", "-d", YAMLLINT_CONFIG, "deploy/kubernetes"], cwd=project)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_contract(project: Path, rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay])
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    dockerfile = (project / "Dockerfile").read_text()

    # Rolling update: a new pod must be Ready before an old one goes.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The autoscaler owns the replica count.
    assert "replicas" not in deployment["spec"]

    # Three probes, each for its own purpose.
    startup, readiness, liveness = (container[f"{kind}Probe"] for kind in ("startup", "readiness", "liveness"))
    assert readiness["httpGet"]["path"] == "/health/ready"
    assert liveness["httpGet"]["path"] == "/health/live"
    assert readiness != liveness
    assert (
        liveness["failureThreshold"] * liveness["periodSeconds"]
        > readiness["failureThreshold"] * readiness["periodSeconds"]
    )
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 30  # worst-case start

    # Shutdown: preStop sleep + graceful drain + lifespan shutdown fit in the grace period.
    env = values(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env[f"{ENV_PREFIX}GRACEFUL_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + LIFESPAN_SHUTDOWN_BUDGET
    assert pre_stop >= 10  # 5 s has been reported too short for proxies to catch up

    # The settings: the ConfigMap, the explicit env, and the optional Secret.
    config_map = one(docs, "ConfigMap")
    env_from = container["envFrom"]
    assert env_from[0]["configMapRef"]["name"] == config_map["metadata"]["name"]
    assert env_from[1]["secretRef"] == {"name": f"{APP}-secrets", "optional": True}
    # The service's settings, and OpenTelemetry's own standard variables (and what they use).
    assert all(key.startswith((ENV_PREFIX, "OTEL_", "POD_")) for key in [*config_map["data"], *env])
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"
    assert config_map["data"][f"{ENV_PREFIX}ENVIRONMENT"] == "production"
    # A Service named like the app would otherwise inject <PREFIX>_PORT=tcp://...
    assert pod["enableServiceLinks"] is False

    # Restricted pod security, matching the image's user.
    uid, gid = map(int, re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE).groups())
    assert uid >= 10000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    # Resources, ephemeral storage included.
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory", "ephemeral-storage"}

    # The port the image listens on.
    [port] = container["ports"]
    assert f"EXPOSE {port['containerPort']}" in dockerfile
    assert env[f"{ENV_PREFIX}PORT"] == str(port["containerPort"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_in_an_init_container_like_the_server(rendered: dict[str, Path], overlay: str) -> None:
    pod = one(documents(rendered[overlay]), "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [migrate] = pod["initContainers"]
    assert migrate["command"] == ["python", "-m", PACKAGE, "db", "upgrade"]
    # The same code, settings, database and restrictions as the server it runs before.
    assert migrate["image"] == container["image"]
    assert migrate["imagePullPolicy"] == container["imagePullPolicy"]
    assert migrate["envFrom"] == container["envFrom"]
    assert migrate["securityContext"] == container["securityContext"]
    for bound in ("requests", "limits"):
        assert set(migrate["resources"][bound]) == {"cpu", "memory", "ephemeral-storage"}
    assert {mount["mountPath"] for mount in migrate["volumeMounts"]} == {"/tmp"}
    # The URL comes from a Secret, for both; never a literal value.
    for reader in (container, migrate):
        assert secret_references(reader) == {DATABASE_URL: DATABASE_SECRET}, reader["name"]
        assert DATABASE_URL not in values(reader)
    assert DATABASE_URL not in one(documents(rendered[overlay]), "ConfigMap")["data"]
    # Both reach the database through the pod's NetworkPolicy.
    policy = one(documents(rendered[overlay]), "NetworkPolicy")
    assert (POSTGRESQL_PORT, "TCP") in egress_ports(policy)


def test_only_the_dev_overlay_holds_a_database_secret(project: Path, rendered: dict[str, Path]) -> None:
    [secret] = of_kind(documents(rendered["dev"]), "Secret")
    assert secret["metadata"]["name"] == DATABASE_SECRET["name"]
    assert secret["metadata"]["namespace"] == one(documents(rendered["dev"]), "Namespace")["metadata"]["name"]
    assert set(secret["stringData"]) == {DATABASE_SECRET["key"]}
    assert secret["stringData"]["url"].startswith("postgresql://")
    # Base and prod carry no credentials: prod's Secret is created outside the manifests.
    for kustomization in ("base", "prod"):
        assert of_kind(documents(rendered[kustomization]), "Secret") == [], kustomization
    kubernetes = project / "deploy" / "kubernetes"
    for path in [*(kubernetes / "base").iterdir(), *(kubernetes / "overlays" / "prod").iterdir()]:
        assert "kind: Secret" not in path.read_text(), path.name
    prod = (kubernetes / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert f"create secret generic {DATABASE_SECRET['name']}" in prod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_fit_together(rendered: dict[str, Path], overlay: str) -> None:
    docs = documents(rendered[overlay])
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert namespace not in ("default", "kube-system")
    assert one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for document in docs:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["kind"]

    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert one(docs, "Service")["spec"]["selector"] == selector
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    # The DNS rule selects the cluster's DNS pods, not ours.
    dns_peer = policy["egress"][0]["to"][0]["podSelector"]["matchLabels"]
    assert dns_peer == {"k8s-app": "kube-dns"}
    autoscaler = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    service_account = one(docs, "ServiceAccount")
    assert service_account["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == service_account["metadata"]["name"]


def test_prod_is_bigger_spread_and_pinned(rendered: dict[str, Path]) -> None:
    dev, prod = (documents(rendered[overlay]) for overlay in OVERLAYS)
    dev_scaler, prod_scaler = (one(docs, "HorizontalPodAutoscaler")["spec"] for docs in (dev, prod))
    assert prod_scaler["minReplicas"] >= 3 > dev_scaler["minReplicas"]
    assert prod_scaler["maxReplicas"] > dev_scaler["maxReplicas"]
    pod = one(prod, "Deployment")["spec"]["template"]["spec"]
    assert {constraint["topologyKey"] for constraint in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone"
    }
    assert pod["affinity"]["podAntiAffinity"]
    [container] = pod["containers"]
    assert re.fullmatch(rf"\S+/{APP}@sha256:[0-9a-f]{{64}}", container["image"])
    [dev_container] = one(dev, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert dev_container["image"].endswith(f"/{APP}:dev")
    assert one(prod, "Namespace")["metadata"]["name"] != one(dev, "Namespace")["metadata"]["name"]


def test_settings_load_in_the_service(default_project: Path, rendered: dict[str, Path]) -> None:
    """The ConfigMap, env values and the dev Secret's URL are valid settings for the generated
    service itself (prod's URL is the operator's: a stand-in of the same form)."""
    for overlay in OVERLAYS:
        docs = documents(rendered[overlay])
        [container] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        environment = {**one(docs, "ConfigMap")["data"]}
        environment.update((name, value) for name, value in values(container).items() if name.startswith(ENV_PREFIX))
        secrets = of_kind(docs, "Secret")
        environment[DATABASE_URL] = (
            secrets[0]["stringData"]["url"] if secrets else f"postgresql://{PACKAGE}:secret@db.internal:5432/{PACKAGE}"
        )
        script = (
            "import json, sys\n"
            f"from {PACKAGE}.settings import Settings\n"
            "fields = set(Settings.model_fields)\n"
            "unknown = [key for key in json.loads(sys.argv[1])"
            f" if key.removeprefix('{ENV_PREFIX}').lower() not in fields]\n"
            "assert not unknown, unknown\n"
            "print(Settings(_env_file=None).model_dump_json())\n"
        )
        result = run(
            [str(default_project / ".venv" / "bin" / "python"), "-c", script, json.dumps(environment)],
            cwd=default_project,
            env={"PATH": "/usr/bin:/bin", **environment},
        )
        loaded = json.loads(result.stdout)
        assert loaded["environment"] == "production"
        assert loaded["port"] == 8000
        assert loaded["database_url"] == "**********"  # a secret: never dumped
        assert (loaded["database_pool_size"], loaded["database_max_overflow"]) == (5, 2)


# --- Without a database ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_without_database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    project = render(
        tmp_path_factory.mktemp("kubernetes-no-db") / "acme-orders", deploy_targets=["kubernetes"], database="none"
    )
    run(["yamllint", "--strict", "-d", YAMLLINT_CONFIG, "deploy/kubernetes"], cwd=project)
    assert not (project / "deploy/kubernetes/overlays/dev/database-secret.yaml").exists()
    return kustomize(project, tmp_path_factory.mktemp("rendered-no-db"), ("base", *OVERLAYS))


@pytest.mark.parametrize("kustomization", ("base", *OVERLAYS))
def test_without_a_database_nothing_of_it_is_rendered(
    rendered_without_database: dict[str, Path], kustomization: str
) -> None:
    path = rendered_without_database[kustomization]
    if kustomization != "base":
        run(["kubernetes-validate", "--strict", "--quiet", str(path)], cwd=path.parent)
    docs = documents(path)
    assert of_kind(docs, "Secret") == []
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    [container] = pod["containers"]
    assert secret_references(container) == {}
    assert not [key for key in one(docs, "ConfigMap")["data"] if "DATABASE" in key]
    assert (POSTGRESQL_PORT, "TCP") not in egress_ports(one(docs, "NetworkPolicy"))
    assert "DATABASE" not in path.read_text()
