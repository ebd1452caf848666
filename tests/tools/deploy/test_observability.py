"""
The shipped dashboards, alert rules and scrape configuration, checked without
a Prometheus or a Grafana.

- `promtool check rules` and `promtool test rules` on
  deploy/observability/prometheus/rules.yaml and rules_test.yaml; every alert
  has a severity, operator-facing annotations, and unit tests with a series
  that fires it and one that does not.
- `promtool check config` on prometheus.yml (with its Kubernetes discovery
  swapped for static targets when promtool was built without it, as Debian's
  is), and the pod relabelling applied to the Deployments under deploy/k8s:
  the annotated web pods are scraped on their annotated port and path, nothing
  else is.
- Every dashboard query parses (promtool, as recording rules), and every
  metric a dashboard or a rule queries is one the code exports: a Counter `x`
  is scraped as `x_total`, a Histogram `x` as `x_bucket`/`x_sum`/`x_count`.

promtool is a tool of the machine, not of the virtualenv (Debian's
`prometheus` package has it): without it the promtool tests are skipped on a
developer's machine and fail under CI (CLEAVE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from cleave.testing import services_required

ROOT = Path(__file__).resolve().parents[3]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus"
RULES = PROMETHEUS / "rules.yaml"
RULES_TEST = PROMETHEUS / "rules_test.yaml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARDS = sorted((OBSERVABILITY / "grafana").glob("*.json"))
K8S = ROOT / "deploy" / "k8s"
SEVERITIES = {"critical", "warning"}
# Series Prometheus makes itself at scrape time.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana's interval variables, for a query to parse on its own.
GRAFANA_DURATIONS = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{__\w+\}")
GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = (
        "promtool is not installed: the rule and scrape-config checks need it "
        "(apt-get install prometheus: Debian's package has promtool)"
    )
    if services_required():
        pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


@cache
def _rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def _rule_list() -> list[dict]:
    return [rule for group in _rules()["groups"] for rule in group["rules"]]


def _alerts() -> list[dict]:
    return [rule for rule in _rule_list() if "alert" in rule]


# --- PromQL: which metrics a query names ---------------------------------------------------

_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "atan2", "inf", "nan",
}  # fmt: skip
_COMMENT = re.compile(r"#[^\n]*")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*["']([a-zA-Z_:][\w:]*)["']""")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# an identifier that is not part of a number or duration, and not a function call
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*)\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords or labels)."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = _COMMENT.sub(" ", text)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    text = GRAFANA_VARIABLE.sub(" ", text)
    names |= {word for word in _IDENTIFIER.findall(text) if word.lower() not in _PROMQL_WORDS}
    return names


def variable_metric_names(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus variable query (`label_values(m, l)`, ...)."""
    if match := _LABEL_VALUES.match(query):
        args = match.group(1)
        # label_values(label) names no metric; label_values(selector, label) does
        selector, comma, _label = args.rpartition(",")
        return metric_names(selector) if comma else set()
    if match := _QUERY_RESULT.match(query):
        return metric_names(match.group(1))
    if query.strip().startswith(("metrics(", "label_names(")):
        return set()
    return metric_names(query)


def _scraped_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count"}
    return {name}


@cache
def exported_names() -> frozenset[str]:
    """Every series name a scrape of `/metrics` can show: the platform's metrics and state."""
    from prometheus_client.metrics import MetricWrapperBase

    from cleave.observability import metrics
    from cleave.runtime import probes

    families = [
        family
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    ]
    # The state collector reads the databases at scrape time; without database
    # access here each alias's read fails (and is logged), but every family is
    # still yielded, which is all that is needed: the names.
    families += list(probes.StateCollector().collect())
    names: set[str] = set()
    for family in families:
        names |= _scraped_names(family.name, family.type)
    return frozenset(names)


def unknown_metrics(exprs: dict[str, str], *, recorded: set[str]) -> dict[str, set[str]]:
    """Per place, the metric names its expression uses that nothing exports or records."""
    known = exported_names() | recorded | PROMETHEUS_SERIES
    found = {where: metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in found.items() if names}


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rule_list() if "record" in rule}


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs(path: Path) -> dict[str, str]:
    dashboard = json.loads(path.read_text())
    exprs = {}
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                exprs[f"{path.name}: {panel['title']!r} {target['refId']}"] = target["expr"]
    return exprs


def _dashboard_variable_queries(path: Path) -> dict[str, str]:
    dashboard = json.loads(path.read_text())
    queries = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            query = query.get("query", "") if isinstance(query, dict) else query
            queries[f"{path.name}: variable {variable['name']}"] = query
    return queries


# --- the extraction itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (service, route) (rate(http_requests_total{service=~"$service"}[5m]))',
            {"http_requests_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (service, le) "
            "(rate(http_request_duration_seconds_bucket[$__rate_interval])))",
            {"http_request_duration_seconds_bucket"},
        ),
        (
            'a_total{x="by (y) #rate(b)"} / on (job) group_left (pod) c offset 15m > 1e3',
            {"a_total", "c"},
        ),
        ('(x unless x offset 15m) or vector(0) and {__name__="y"}', {"x", "y"}),
        (
            "service:http_requests:rate5m > bool 0.05 # a comment names_nothing",
            {"service:http_requests:rate5m"},
        ),
        ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_variable_queries_name_their_metric():
    assert variable_metric_names("label_values(http_requests_total, service)") == {
        "http_requests_total"
    }
    assert variable_metric_names('label_values(a_total{job="x"}, route)') == {"a_total"}
    assert variable_metric_names("label_values(service)") == set()
    assert variable_metric_names("query_result(topk(5, b_count))") == {"b_count"}


def test_the_check_refuses_a_metric_the_code_does_not_export():
    exprs = {
        "exists": "rate(http_requests_total[5m])",
        "a typo": "rate(http_request_total[5m])",
        "a histogram by its base name": "http_request_duration_seconds",
        "a counter without _total": "rate(cleave_saga_started[5m])",
        "a gauge with a suffix": "cleave_outbox_pending_total",
        "recorded": "service:http_requests:rate5m",
    }
    assert unknown_metrics(exprs, recorded={"service:http_requests:rate5m"}) == {
        "a typo": {"http_request_total"},
        "a histogram by its base name": {"http_request_duration_seconds"},
        "a counter without _total": {"cleave_saga_started"},
        "a gauge with a suffix": {"cleave_outbox_pending_total"},
    }


def test_the_code_exports_the_documented_names():
    assert {
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "service_call_duration_seconds_count",
        "circuit_breaker_state",
        "circuit_breaker_transitions_total",
        "cleave_saga_finished_total",
        "cleave_saga_overdue_compensations_total",
        "cleave_events_delivered_total",
        "cleave_reservation_expiries_total",
        # read from the databases at scrape time
        "cleave_outbox_pending",
        "cleave_outbox_lag_seconds",
        "cleave_sagas_running",
        "cleave_dead_letters",
        "cleave_context_move_pause_seconds",
    } <= exported_names()


# --- every metric queried is exported ------------------------------------------------------


def test_there_is_a_dashboard():
    assert [path.name for path in DASHBOARDS] == ["cleave.json"]


def test_every_metric_a_dashboard_queries_is_exported():
    for path in DASHBOARDS:
        exprs = _dashboard_exprs(path)
        assert exprs, f"{path.name} has no query"
        assert unknown_metrics(exprs, recorded=_recorded()) == {}, path.name
        for where, query in _dashboard_variable_queries(path).items():
            unknown = variable_metric_names(query) - exported_names()
            assert not unknown, f"{where} queries {sorted(unknown)}, which nothing exports"


def test_every_metric_a_rule_queries_is_exported():
    exprs = {rule.get("alert") or rule["record"]: rule["expr"] for rule in _rule_list()}
    assert unknown_metrics(exprs, recorded=_recorded()) == {}


# --- the dashboard's shape --------------------------------------------------------------------


def test_dashboard_queries_the_chosen_prometheus_and_service():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["schemaVersion"] >= 39
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        service = variables["service"]
        assert service["query"]["query"] == "label_values(http_requests_total, service)"
        ids = [panel["id"] for panel in _panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), "panel ids repeat"
        for panel in _panels(dashboard["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        # the HTTP and service-call panels follow the service variable
        for where, expr in _dashboard_exprs(path).items():
            if re.search(r"\b(http_|service_call_|circuit_breaker_)", expr):
                assert '$service"' in expr, where


def test_every_dashboard_query_parses(tmp_path):
    """promtool parses PromQL in rule files: each query becomes a recording rule."""
    rules, places = [], []
    for path in DASHBOARDS:
        for where, expr in _dashboard_exprs(path).items():
            plain = GRAFANA_DURATIONS.sub("5m", expr)
            plain = GRAFANA_VARIABLE.sub(".*", plain)
            rules.append({"record": f"dashboard:query{len(rules)}", "expr": plain})
            places.append(f"query{len(places)}: {where}")
    queries = tmp_path / "dashboard_queries.yaml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = _run("check", "rules", str(queries), cwd=tmp_path)
    assert checked.returncode == 0, "\n".join([checked.stdout + checked.stderr, *places])


# --- rules ---------------------------------------------------------------------------------


def test_rules_pass_promtool_check():
    checked = _run("check", "rules", RULES.name, cwd=PROMETHEUS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_unit_tests_pass():
    tested = _run("test", "rules", RULES_TEST.name, cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alerts_are_in_the_cleave_group():
    groups = {group["name"]: group for group in _rules()["groups"]}
    alerting = {
        group["name"] for group in groups.values() if any("alert" in r for r in group["rules"])
    }
    assert alerting == {"cleave"}
    assert {rule["alert"] for rule in _alerts()} >= {
        "CleaveHighErrorRatio",
        "CleaveHighLatencyP99",
        "CleaveOutboxLagging",
        "CleaveDeadLettersGrowing",
        "CleaveSagaFailed",
        "CleaveCheckoutCompensationRatioHigh",
        "CleaveCircuitBreakerOpen",
        "CleaveSagaCompensationOverdue",
    }


def test_every_alert_tells_an_operator_what_to_do():
    docs = ROOT / "docs"
    for rule in _alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        referenced = re.findall(r"docs/([\w-]+\.md)", annotations["description"])
        assert referenced, f"{name}: the description points to no document"
        page, _, anchor = annotations["runbook"].partition("#")
        headings = {
            re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in (ROOT / page).read_text().splitlines()
            if line.startswith("#")
        }
        assert anchor in headings, f"{name}: {page} has no section #{anchor}"
        for document in referenced:
            assert (docs / document).is_file(), f"{name}: docs/{document} does not exist"
        for section in re.findall(r'docs/([\w-]+\.md), "([^"]+)"', annotations["description"]):
            text = (docs / section[0]).read_text()
            assert re.search(rf"^#+ {re.escape(section[1])}$", text, re.M), (name, section)


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not():
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == [RULES.name]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fired == set(), "alerts no test fires"
    assert names - quiet == set(), "alerts no test keeps quiet"


# --- scrape configuration ------------------------------------------------------------------


def test_prometheus_config_passes_promtool_check(tmp_path):
    checked = _run("check", "config", CONFIG.name, cwd=PROMETHEUS)
    output = checked.stdout + checked.stderr
    if checked.returncode != 0 and "field kubernetes_sd_configs not found" in output:
        # Debian builds Prometheus without Kubernetes discovery: check the rest,
        # with static targets in its place (the relabelling is checked below).
        config = yaml.safe_load(CONFIG.read_text())
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
        for rule_file in config["rule_files"]:
            shutil.copy(PROMETHEUS / rule_file, tmp_path / rule_file)
        (tmp_path / CONFIG.name).write_text(yaml.safe_dump(config))
        checked = _run("check", "config", CONFIG.name, cwd=tmp_path)
        output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert yaml.safe_load(CONFIG.read_text())["rule_files"] == [RULES.name]


def _relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep, drop, replace), enough for the shipped config."""
    labels = dict(labels)
    for config in configs:
        action = config.get("action", "replace")
        value = config.get("separator", ";").join(
            labels.get(name, "") for name in config.get("source_labels", [])
        )
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", config.get("replacement", "$1"))
            result = match.expand(template)
            if result:
                labels[config["target_label"]] = result
            else:
                labels.pop(config["target_label"], None)
        assert action in {"keep", "drop", "replace"}, f"the test does not know {action}"
    return labels


def _meta(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _pod_targets(pod: dict, namespace: str, name: str, ip: str) -> list[dict[str, str]]:
    """The targets Kubernetes pod discovery gives: one per declared container port."""
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": "Running",
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
    }
    for key, value in (pod["metadata"].get("annotations") or {}).items():
        meta[f"__meta_kubernetes_pod_annotation_{_meta(key)}"] = value
    for key, value in (pod["metadata"].get("labels") or {}).items():
        meta[f"__meta_kubernetes_pod_label_{_meta(key)}"] = value
    ports = [
        port["containerPort"]
        for container in pod["spec"]["containers"]
        for port in container.get("ports") or []
    ]
    return [{**meta, "__address__": f"{ip}:{port}"} for port in ports] or [
        {**meta, "__address__": ip}
    ]


def _final(labels: dict[str, str]) -> dict[str, str]:
    kept = {"__address__", "__metrics_path__", "__scheme__"}
    return {k: v for k, v in labels.items() if not k.startswith("__") or k in kept}


def _deployments() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                found.append((f"{path.relative_to(K8S)}:{doc['metadata']['name']}", doc))
    return found


def test_the_kubernetes_job_scrapes_the_annotated_web_pods_only():
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if "kubernetes_sd_configs" in job]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    namespaces = {
        yaml.safe_load(path.read_text())["namespace"]
        for path in (K8S / "overlays").glob("*/kustomization.yaml")
    }
    assert namespaces <= set(discovery["namespaces"]["names"])
    deployments = _deployments()
    assert deployments
    scraped = 0
    for where, doc in deployments:
        pod = doc["spec"]["template"]
        annotations = pod["metadata"].get("annotations") or {}
        targets = [
            _relabel(target, job["relabel_configs"])
            for target in _pod_targets(pod, "cleave", "pod-0", "10.1.2.3")
        ]
        targets = [_final(target) for target in targets if target is not None]
        if annotations.get("prometheus.io/scrape") != "true":
            assert targets == [], f"{where} is scraped without asking"
            continue
        scraped += 1
        port = annotations["prometheus.io/port"]
        assert targets == [
            {
                "__address__": f"10.1.2.3:{port}",
                "__metrics_path__": annotations.get("prometheus.io/path", "/metrics"),
                "__scheme__": "http",
                "namespace": "cleave",
                "pod": "pod-0",
                "component": pod["metadata"]["labels"]["app.kubernetes.io/component"],
                **(
                    {"group": pod["metadata"]["labels"]["cleave.dev/context"]}
                    if "cleave.dev/context" in pod["metadata"]["labels"]
                    else {}
                ),
            }
        ], where
        declared = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
        assert int(port) in declared, f"{where} asks to be scraped on a port it does not open"
    assert scraped, "no Deployment asks to be scraped"


def test_no_target_label_hides_a_metric_label():
    """A target label named like a metric's label would rename the metric's to exported_*."""
    config = yaml.safe_load(CONFIG.read_text())
    metric_labels = {"service", "context", "route", "method", "status", "status_code", "type"}
    metric_labels |= {"target_service", "state", "saga_type", "step", "kind", "reason"}
    metric_labels |= {"outcome", "handler", "waiting", "le"}
    for job in config["scrape_configs"]:
        targets = {r.get("target_label") for r in job.get("relabel_configs", [])}
        for static in job.get("static_configs", []):
            targets |= set(static.get("labels", {}))
        assert not targets & metric_labels, job["job_name"]


def test_the_local_job_scrapes_make_run():
    makefile = (ROOT / "Makefile").read_text()
    host = re.search(r"^HOST \?= (\S+)$", makefile, re.M).group(1)
    port = re.search(r"^PORT \?= (\S+)$", makefile, re.M).group(1)
    config = yaml.safe_load(CONFIG.read_text())
    static = [job for job in config["scrape_configs"] if "static_configs" in job]
    assert [t for job in static for s in job["static_configs"] for t in s["targets"]] == [
        f"{host}:{port}"
    ]


def test_the_target_down_alert_watches_the_shipped_jobs():
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    (rule,) = [rule for rule in _alerts() if rule["alert"] == "CleaveTargetDown"]
    watched = re.search(r'up\{job=~"([^"]+)"\}', rule["expr"]).group(1)
    assert all(re.fullmatch(watched, job) for job in jobs), (watched, jobs)
