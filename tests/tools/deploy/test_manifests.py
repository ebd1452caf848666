"""
The shipped deployment files, checked without a cluster or a container engine.

Kubernetes: every overlay builds with `kubectl kustomize`; every core object
validates strictly with kubernetes-validate and the Istio objects have the
expected shape; the committed split overlay is what `manage.py deploy render`
generates; no Secret with values is committed; the Deployments keep the seed's
shape; the AuthorizationPolicies follow the service grants; nginx accepts the
gateway configuration. Image and compose: every path the Dockerfile copies
exists, every role used is one the entrypoint knows, and the compose files
use only documented variables.

kubectl and nginx are tools of the machine, not of the virtualenv: a test that
needs a missing one is skipped on a developer's machine and fails under CI
(CLEAVE_REQUIRE_SERVICES=1), naming what to install.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from cleave.core import conf
from cleave.core.registry import all_contexts
from cleave.testing import services_required
from cleave_tools.deploy import manifests
from cleave_tools.deploy.gateway import Route, render_nginx

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
# the compose files' forms, and the Kubernetes overlays (the two forms, the split
# without Istio, and the example installation)
FORMS = ("monolith", "split")
OVERLAYS = (*FORMS, "split-without-istio", "example")
# The oldest Kubernetes the manifests promise to fit (PodDisruptionBudget policy/v1,
# seccompProfile, Job backoffLimit: all well before it).
KUBERNETES_VERSION = "1.30.0"
CORE_KINDS = {"Namespace", "Deployment", "Service", "Job", "ServiceAccount"}
CORE_KINDS |= {"PodDisruptionBudget", "ConfigMap", "Ingress"}
ISTIO_KINDS = {"AuthorizationPolicy", "PeerAuthentication"}
ROLES = {"web", "worker", "relay", "beat", "migrate"}
SERVING = {"web", "gateway"}  # the components that answer HTTP, hence the probes
# the image overlays/example installs, from its registry
EXAMPLE_IMAGE = "registry.example.com/shop/cleave"
PRINCIPAL = re.compile(r"^cluster\.local/ns/[a-z0-9-]+/sa/[a-z0-9-]+$")


def _tool(name: str, fallback: str | None = None) -> str:
    found = shutil.which(name) or (fallback if fallback and os.access(fallback, os.X_OK) else None)
    if found:
        return found
    message = f"{name} is not installed: the deploy checks need it ({name} on PATH)"
    if services_required():
        pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@cache
def _kustomize(overlay: str) -> tuple[dict, ...]:
    kubectl = _tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert built.returncode == 0, f"kubectl kustomize {overlay} failed:\n{built.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def built(request) -> tuple[dict, ...]:
    return _kustomize(request.param)


def _of(docs, kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def _named(docs, kind: str, name: str) -> dict:
    (found,) = [doc for doc in _of(docs, kind) if doc["metadata"]["name"] == name]
    return found


def _component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


# --- Kubernetes: build and validate ---------------------------------------------------------


def test_each_overlay_builds_into_known_kinds_only(built):
    kinds = {doc["kind"] for doc in built}
    assert kinds <= CORE_KINDS | ISTIO_KINDS, kinds - CORE_KINDS - ISTIO_KINDS
    assert {"Deployment", "Service", "Job", "ServiceAccount", "ConfigMap"} <= kinds


def test_every_core_object_validates_strictly(built):
    for doc in built:
        if doc["kind"] in CORE_KINDS:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")


def test_istio_objects_have_the_expected_shape():
    docs = _kustomize("split")
    policies = _of(docs, "AuthorizationPolicy")
    # one per context, and one for the admin console
    assert {p["metadata"]["name"] for p in policies} == {*settings.CLEAVE_ALL_CONTEXTS, "admin"}
    for doc in policies + _of(docs, "PeerAuthentication"):
        assert doc["apiVersion"] == "security.istio.io/v1", doc["metadata"]["name"]
        assert doc["metadata"]["namespace"] == "cleave"
    for policy in policies:
        spec = policy["spec"]
        assert spec["action"] == "ALLOW"
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
        assert spec["rules"], policy["metadata"]["name"]
        for rule in spec["rules"]:
            assert set(rule) == {"from", "to"}
            for source in rule["from"]:
                assert all(PRINCIPAL.match(p) for p in source["source"]["principals"])
            for target in rule["to"]:
                operation = target["operation"]
                assert set(operation) <= {"methods", "paths"}
                assert all(path.startswith("/") for path in operation["paths"])
                # Istio refuses a `*` glob beside a `{*}` template in one path
                assert not any(
                    "*" in p.replace("{*}", "") and "{*}" in p for p in operation["paths"]
                )


# --- Kubernetes: generated, and nothing secret --------------------------------------------------


def _compose_copy(tmp_path: Path) -> Path:
    compose = tmp_path / "compose"
    compose.mkdir()
    for path in COMPOSE.glob("compose.*.yaml"):
        shutil.copy(path, compose / path.name)
    return compose


def _tree(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.is_file()}


def test_the_committed_split_overlay_is_what_deploy_render_generates(tmp_path):
    compose = _compose_copy(tmp_path)
    call_command(
        "deploy", "render", "--output", str(tmp_path / "split"), "--compose-dir", str(compose)
    )
    assert _tree(tmp_path / "split") == _tree(K8S / "overlays" / "split")
    assert _tree(compose / "gateway") == _tree(COMPOSE / "gateway")
    # and a second run gives the same bytes
    call_command(
        "deploy", "render", "--output", str(tmp_path / "again"), "--compose-dir", str(compose)
    )
    assert _tree(tmp_path / "again") == _tree(tmp_path / "split")


def test_deploy_check_names_the_stale_file(tmp_path):
    compose = _compose_copy(tmp_path)
    overlay = tmp_path / "split"
    shutil.copytree(K8S / "overlays" / "split", overlay)
    shutil.copytree(COMPOSE / "gateway", compose / "gateway")
    call_command("deploy", "check", "--output", str(overlay), "--compose-dir", str(compose))

    orders = overlay / "orders.yaml"
    orders.write_text(orders.read_text().replace("replicas: 3", "replicas: 2", 1))
    with pytest.raises(CommandError, match=r"orders\.yaml: differs"):
        call_command("deploy", "check", "--output", str(overlay), "--compose-dir", str(compose))


def _deploy_documents() -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
            found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def test_no_secret_with_values_is_committed_under_deploy():
    for path, doc in _deploy_documents():
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), path
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    env_files = [name for name in tracked if name.endswith(".env") or "/.env" in name]
    assert env_files in ([], ["deploy/compose/example.env"]), env_files
    for line in (COMPOSE / "example.env").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.split("=", 1)[1].startswith("replace-me-"), line


def test_every_secret_reference_names_the_one_secret(built):
    for doc in _of(built, "Deployment") + _of(built, "Job"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == manifests.SECRET, (doc["metadata"]["name"], env["name"])


# --- Kubernetes: the seed's shape -----------------------------------------------------------------


def test_every_deployment_keeps_the_seeds_shape(built):
    deployments = _of(built, "Deployment")
    assert deployments
    for doc in deployments:
        name, component = doc["metadata"]["name"], _component(doc)
        pod = doc["spec"]["template"]
        containers = pod["spec"]["containers"]
        assert all(c["resources"] == manifests.RESOURCES for c in containers), name
        if component in SERVING:
            assert doc["spec"]["replicas"] == manifests.REPLICAS, name
            (container,) = containers
            assert container["livenessProbe"] == manifests.LIVENESS, name
            assert container["readinessProbe"]["initialDelaySeconds"] == 5, name
            assert container["readinessProbe"]["periodSeconds"] == 5, name
            assert container["ports"] == [{"name": "http", "containerPort": 8000}], name
        if component == "web":
            assert containers[0]["readinessProbe"] == manifests.READINESS, name
            assert pod["metadata"]["annotations"] == manifests.SCRAPE, name
        elif component == "worker":
            assert doc["spec"]["replicas"] == manifests.REPLICAS, name
        else:
            # one relay per alias is enough, and beat must be alone
            assert component in SERVING | {"relay", "beat"}, name
        if component == "beat":
            assert doc["spec"]["replicas"] == 1 and doc["spec"]["strategy"]["type"] == "Recreate"


def test_every_web_deployment_has_a_service_on_port_80_and_a_disruption_budget(built):
    for doc in _of(built, "Deployment"):
        if _component(doc) not in SERVING:
            continue
        name = doc["metadata"]["name"]
        service = _named(built, "Service", name)
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
        ]
        assert service["spec"]["selector"] == doc["spec"]["selector"]["matchLabels"]
        budget = _named(built, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == doc["spec"]["selector"]["matchLabels"]


def test_the_split_serves_each_context_at_its_label_with_its_own_account():
    docs = _kustomize("split")
    for label in settings.CLEAVE_ALL_CONTEXTS:
        web = _named(docs, "Deployment", label)
        env = {
            e["name"]: e.get("value")
            for e in web["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["CLEAVE_CONTEXTS"] == label
        for name in (label, f"{label}-worker", f"{label}-relay"):
            pod = _named(docs, "Deployment", name)["spec"]["template"]["spec"]
            assert pod["serviceAccountName"] == f"cleave-{label}"
        _named(docs, "ServiceAccount", f"cleave-{label}")
        _named(docs, "Job", f"migrate-{label}")
    _named(docs, "Job", "migrate-default")


def test_the_split_without_istio_is_the_split_less_its_mesh():
    split, plain = _kustomize("split"), _kustomize("split-without-istio")
    assert not [doc for doc in plain if doc["apiVersion"].startswith("security.istio.io/")]
    (namespace,) = _of(plain, "Namespace")
    assert "istio-injection" not in (namespace["metadata"].get("labels") or {})

    def core(docs):
        return sorted((d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in CORE_KINDS)

    assert core(plain) == core(split)
    # the same pods: only the mesh's objects differ
    assert _of(plain, "Deployment") == _of(split, "Deployment")
    assert _of(plain, "Job") == _of(split, "Job")


def test_the_example_installs_the_split_from_a_registry_behind_an_ingress():
    docs = _kustomize("example")
    images = {
        container["image"]
        for doc in _of(docs, "Deployment") + _of(docs, "Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{EXAMPLE_IMAGE}:0.1.0", manifests.GATEWAY_IMAGE}
    assert {doc["metadata"]["namespace"] for doc in docs if doc["kind"] != "Namespace"} == {
        "cleave"
    }
    config = _named(docs, "ConfigMap", manifests.CONFIG_MAP)["data"]
    (ingress,) = _of(docs, "Ingress")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == config["PUBLIC_HOSTS"].split(",")
    assert config["DJANGO_CSRF_TRUSTED_ORIGINS"] == ",".join(f"https://{h}" for h in hosts)
    assert ingress["spec"]["tls"][0]["hosts"] == hosts
    # the Ingress controller and the gateway both append to X-Forwarded-For
    assert config["CLEAVE_TRUSTED_PROXIES"] == "2"
    gateway = _named(docs, "Service", manifests.GATEWAY)
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == gateway["metadata"]["name"]
            assert backend["port"]["name"] in {p["name"] for p in gateway["spec"]["ports"]}


def test_web_containers_outlast_the_migration_wait_before_liveness_counts(built):
    wait = conf.BY_NAME["CLEAVE_MIGRATION_WAIT"].default
    for doc in _of(built, "Deployment"):
        if _component(doc) != "web":
            continue
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        startup = container["startupProbe"]
        assert startup["httpGet"] == {"path": "/health", "port": "http"}
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget > wait, doc["metadata"]["name"]


# --- Istio: who calls what ------------------------------------------------------------------------


def _admitted(policy: dict, account: str) -> set[tuple[str, str]]:
    principal = f"cluster.local/ns/cleave/sa/{account}"
    found = set()
    for rule in policy["spec"]["rules"]:
        if any(principal in s["source"]["principals"] for s in rule["from"]):
            for target in rule["to"]:
                for method in target["operation"].get("methods", ["*"]):
                    found |= {(method, path) for path in target["operation"]["paths"]}
    return found


def test_inventory_admits_orders_writes_and_not_analytics():
    inventory = _named(_kustomize("split"), "AuthorizationPolicy", "inventory")
    orders = _admitted(inventory, "cleave-orders")
    assert ("POST", "/api/inventory/reservations") in orders
    assert ("POST", "/api/inventory/reservations/{*}/commit") in orders
    assert ("POST", "/api/inventory/reservations/{*}/release") in orders
    assert ("GET", "/api/inventory/reservations") in orders  # a lost answer, found by key
    # exactly the operations that list orders among their callers: not reservation_get
    assert ("GET", "/api/inventory/reservations/{*}") not in orders
    assert _admitted(inventory, "cleave-analytics") == set()
    assert ("*", "/api/inventory/*") in _admitted(inventory, "cleave-gateway")


def test_a_read_grant_admits_reads_only():
    users = _named(_kustomize("split"), "AuthorizationPolicy", "users")
    orders = _admitted(users, "cleave-orders")
    assert ("GET", "/api/users/customers/{*}") in orders
    assert {method for method, _ in orders} == {"GET"}
    # inventory calls nothing of users
    assert _admitted(users, "cleave-inventory") == set()


def test_policies_follow_the_operations_callers(monkeypatch):
    from dataclasses import replace

    from contracts import inventory as declared

    admitting = replace(declared.RESERVATION_GET, callers=("analytics",))
    contract = replace(
        declared.CONTRACT,
        operations=tuple(
            admitting if op.name == admitting.name else op for op in declared.CONTRACT.operations
        ),
    )
    monkeypatch.setattr(manifests, "contract_for", lambda label: contract)
    contexts = all_contexts()
    inventory = next(cfg for cfg in contexts if cfg.label == "inventory")
    policy = manifests.authorization_policy(inventory, "cleave", contexts)
    analytics = _admitted(policy, "cleave-analytics")
    assert ("GET", "/api/inventory/reservations/{*}") in analytics
    assert not any(method == "POST" for method, _ in analytics)


# --- the gateway ----------------------------------------------------------------------------------


def test_the_gateway_configmap_is_render_nginx_for_kubernetes_dns():
    config = _named(_kustomize("split"), "ConfigMap", "gateway-nginx")["data"]["default.conf"]
    routes = manifests.kubernetes_routes(all_contexts())
    assert config == render_nginx(routes, listen="8000", service_host=True)
    assert "server users:80 " in config
    # the mesh routes by Host: each upstream is asked for by its Service's name
    assert "set $cleave_host inventory;" in config


def test_nginx_accepts_the_gateway_configuration(tmp_path):
    nginx = _tool("nginx", "/usr/sbin/nginx")
    # Kubernetes names do not resolve here and nginx -t resolves upstream hosts:
    # the same table with loopback servers
    routes = [
        Route(context=r.context, prefix=r.prefix, servers=(f"127.0.0.1:{9000 + i}",))
        for i, r in enumerate(manifests.kubernetes_routes(all_contexts()))
    ]
    admin = Route(context="admin", prefix="/admin/", servers=("127.0.0.1:9100",))
    (tmp_path / "gateway.conf").write_text(
        render_nginx(routes, listen="8000", service_host=True, admin=admin)
    )
    # the http-level snippet inside a minimal nginx.conf, like the image's conf.d
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path}/access.log;\n"
        f"    client_body_temp_path {tmp_path}/body;\n"
        f"    proxy_temp_path {tmp_path}/proxy;\n"
        f"    include {tmp_path}/gateway.conf;\n"
        "}\n"
    )
    checked = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


# --- the image ------------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    path = path.rstrip("/")
    return any(
        fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns
    )


def test_every_path_the_dockerfile_copies_exists_and_reaches_the_build():
    copies = [args.split() for word, args in _instructions(DOCKERFILE) if word == "COPY"]
    assert copies
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _ignored(source), f".dockerignore leaves {source} out of the build"
    for kept_out in (".venv", "var", ".git", ".pytest_cache", "deploy/compose/cleave.env"):
        assert _ignored(kept_out), kept_out


def test_the_image_runs_unprivileged_with_a_health_check():
    instructions = dict(_instructions(DOCKERFILE))
    assert instructions["FROM"] == "python:3.11-slim"
    user = instructions["USER"].split(":")[0]
    assert user.isdigit() and user != "0"
    assert instructions["EXPOSE"] == "8000"
    assert "/health" in instructions["HEALTHCHECK"] and "python" in instructions["HEALTHCHECK"]
    assert instructions["ENTRYPOINT"] == '["cleave-entrypoint"]'
    # the project, every dependency pinned by constraints.txt
    assert any(
        word == "RUN" and "pip install --constraint constraints.txt ." in args
        for word, args in _instructions(DOCKERFILE)
    )


def _entrypoint_roles() -> set[str]:
    text = ENTRYPOINT.read_text()
    body = text[text.index('case "$role" in') : text.index("esac")]
    roles = set()
    for pattern in re.findall(r"^[ \t]*([^\s()][^()\n]*)\)[ \t]*$", body, flags=re.MULTILINE):
        roles |= {p.strip() for p in pattern.split("|")}
    return roles - {"*", "help", "-h", "--help"}


def test_the_entrypoint_names_every_role():
    assert _entrypoint_roles() == ROLES


def test_the_entrypoint_refuses_an_unknown_role_with_its_usage():
    ran = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve"], capture_output=True, text=True, check=False
    )
    assert ran.returncode == 2
    assert "usage:" in ran.stderr and "worker LABELS" in ran.stderr


def test_the_worker_role_maps_labels_to_queues():
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CLEAVE_EVENT_TRANSPORT": "celery",
        "CLEAVE_MIGRATION_WAIT": "0",
    }
    env.pop("CLEAVE_CONTEXTS", None)
    ran = subprocess.run(
        ["sh", str(ENTRYPOINT), "worker", "orders,payments", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "-Q orders,payments," in ran.stdout


def test_the_serving_roles_wait_for_their_migrations(tmp_path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("DATABASE_URL") and name != "CLEAVE_CONTEXTS"
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        CLEAVE_DATA_DIR=str(tmp_path),
        CLEAVE_EVENT_TRANSPORT="celery",
        CLEAVE_MIGRATION_WAIT="1",
    )

    def worker():
        return subprocess.run(
            ["sh", str(ENTRYPOINT), "worker", "orders", "--dry-run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    waited = worker()
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "Still not migrated after 1s: default:" in waited.stderr
    assert "-Q orders," not in waited.stdout
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate_all", "--noinput"],
        cwd=ROOT,
        env={**env, "CLEAVE_CONTEXTS": "orders"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr
    started = worker()
    assert started.returncode == 0, started.stderr
    assert "Migrated: default, orders." in started.stdout
    assert "-Q orders," in started.stdout


def _k8s_role_args() -> list[list[str]]:
    found = []
    for overlay in OVERLAYS:
        for doc in _of(_kustomize(overlay), "Deployment") + _of(_kustomize(overlay), "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].split(":")[0] in (manifests.IMAGE, EXAMPLE_IMAGE):
                    found.append(container["args"])
    return found


def _compose(name: str) -> dict:
    return yaml.safe_load((COMPOSE / f"compose.{name}.yaml").read_text())


def _cleave_services(document: dict) -> dict[str, dict]:
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("image", "").startswith("cleave:") or "build" in service
    }


def _check_role(args: list[str], where: str) -> None:
    assert args and args[0] in _entrypoint_roles(), f"{where}: {args}"
    if args[0] == "worker":
        labels = args[1].split(",")
        assert set(labels) <= set(settings.CLEAVE_ALL_CONTEXTS), f"{where}: {labels}"


def test_manifests_and_compose_files_use_only_the_entrypoints_roles():
    for args in _k8s_role_args():
        _check_role(args, "k8s")
    for form in FORMS:
        services = _cleave_services(_compose(form))
        assert {s["command"][0] for s in services.values()} == ROLES, form
        for name, service in services.items():
            _check_role(service["command"], f"compose.{form}.yaml {name}")
            if service["command"][0] != "web":
                # the image's HEALTHCHECK asks /health, which only web serves
                assert service["healthcheck"] == {"disable": True}, name


@cache
def _documented() -> re.Pattern:
    """Every variable docs/configuration.md lists, `<LABEL>` standing for any label."""
    names = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", first_cell))
    parts = [re.sub(r"<[A-Z]+>", "[A-Z]+", re.escape(name)) for name in names]
    # the images' own variables and gunicorn's
    parts += ["POSTGRES_[A-Z_]+", "MARIADB_[A-Z_]+", "RABBITMQ_[A-Z_]+"]
    parts += ["WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"]
    return re.compile("^(?:" + "|".join(sorted(parts)) + ")$")


def test_compose_files_use_only_documented_variables():
    example = {
        line.split("=", 1)[0]
        for line in (COMPOSE / "example.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for form in FORMS:
        text = (COMPOSE / f"compose.{form}.yaml").read_text()
        interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
        assert interpolated <= example, (
            f"compose.{form}.yaml: {interpolated - example} not in example.env"
        )
        for name in interpolated:
            assert _documented().match(name), f"compose.{form}.yaml: ${{{name}}}"
        for service_name, service in _compose(form)["services"].items():
            for name in service.get("environment") or {}:
                assert _documented().match(name), f"compose.{form}.yaml {service_name}: {name}"


def test_compose_callers_find_each_remote_context_at_the_group_serving_it():
    services = _cleave_services(_compose("split"))
    serving = {}
    for name, service in services.items():
        if service["command"][0] == "web" and name != "admin":  # the console serves /admin/
            for label in service["environment"]["CLEAVE_CONTEXTS"].split(","):
                serving[label] = name
    assert set(serving) == set(settings.CLEAVE_ALL_CONTEXTS)
    for name, service in services.items():
        environment = service["environment"]
        local = set(environment.get("CLEAVE_CONTEXTS", "").split(","))
        for key, value in environment.items():
            if key.endswith("_SERVICE_URL"):
                label = key.removesuffix("_SERVICE_URL").lower()
                assert label not in local, f"{name}: {key} for a context it serves"
                assert value == f"http://{serving[label]}:8000", f"{name}: {key}"
