"""
The probe's reproduction of the forged client address, against real
processes: gunicorn reached directly (as `make run` serves it: no trusted
proxy) and gunicorn behind the generated nginx gateway (one trusted hop, as
`make run-split`, compose and Kubernetes set it). Nine anonymous GETs, each
with a new made-up `X-Forwarded-For`, under CLEAVE_THROTTLE_ANON=5/minute,
all answered 200; and `X-Forwarded-For: 10.0.0.1` opened /metrics and the
details of /ready.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests

from cleave_tools.deploy.gateway import Route, render_nginx
from tests.support.live import GUNICORN, Process, free_port, wait_until
from tests.tools.deploy.test_gateway import CONTEXTS, nginx_binary


@pytest.fixture(scope="module")
def servers(tmp_path_factory, migrated_template, live_secrets):
    """{"direct": url of gunicorn alone, "gateway": url of nginx in front of another}."""
    from tests.integration.conftest import make_live

    nginx = nginx_binary()
    root = tmp_path_factory.mktemp("client-address")
    manager, live = make_live(root, "inprocess", migrated_template, live_secrets)
    live.env.update(
        CLEAVE_THROTTLE_ANON="5/minute",
        # the loopback the tests come from is outside: only 10/8 is inside
        CLEAVE_METRICS_ALLOW="10.0.0.0/8",
    )
    processes = []

    def web(name: str, proxies: str) -> str:
        port = free_port()
        args = [GUNICORN, "-c", "python:config.gunicorn", "config.wsgi"]
        args += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
        args += ["--access-logfile", "-"]  # as the image's entrypoint runs it
        env = {**live.env, "CLEAVE_TRUSTED_PROXIES": proxies}
        process = Process(name, args, env, live.logs / f"{name}.log")
        processes.append(process)
        return f"127.0.0.1:{port}"

    direct, behind = web("direct", "0"), web("behind", "1")
    # the loopback as a trusted proxy network: what it forwards is believed
    proxied = web("proxied", "127.0.0.1/32")
    gateway_port = free_port()
    gateway_dir = root / "gateway"
    gateway_dir.mkdir()
    conf = gateway_dir / "nginx.conf"
    routes = [Route(label, f"/api/{label}/", (behind,)) for label in CONTEXTS]
    conf.write_text(
        render_nginx(routes, listen=f"127.0.0.1:{gateway_port}", standalone=str(gateway_dir))
    )
    gateway = subprocess.Popen(
        [nginx, "-p", str(gateway_dir), "-e", "stderr", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    urls = {
        "direct": f"http://{direct}",
        "gateway": f"http://127.0.0.1:{gateway_port}",
        "proxied": f"http://{proxied}",
    }
    logs = {process.name: process for process in processes}

    def ready(url: str):
        def check():
            for process in processes:
                if not process.alive():
                    raise AssertionError(f"{process.name} exited:\n{process.output()[-4000:]}")
            try:
                return requests.get(f"{url}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        return check

    try:
        for url in [*urls.values(), f"http://{behind}"]:
            wait_until(ready(url), timeout=90, what=f"{url} to be ready")
        yield urls, logs
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(timeout=10)
        for process in processes:
            process.stop()
        manager.__exit__(None, None, None)


@pytest.mark.parametrize("way", ["direct", "gateway"])
def test_rotating_a_made_up_forwarded_for_entry_does_not_escape_the_anonymous_throttle(
    servers, way
):
    servers, _logs = servers
    codes = [
        requests.get(
            f"{servers[way]}/api/catalog/categories",
            headers={"X-Forwarded-For": f"198.18.7.{n}"},
            timeout=10,
        ).status_code
        for n in range(1, 10)
    ]

    assert codes == [200] * 5 + [429] * 4


@pytest.mark.parametrize("way", ["direct", "gateway"])
def test_naming_an_inside_address_opens_neither_metrics_nor_readiness_details(servers, way):
    servers, _logs = servers
    inside = {"X-Forwarded-For": "10.0.0.1"}

    metrics = requests.get(f"{servers[way]}/metrics", headers=inside, timeout=10)
    ready = requests.get(f"{servers[way]}/ready", headers=inside, timeout=10)

    assert metrics.status_code == 404
    assert metrics.headers["Content-Type"] == "application/problem+json"
    assert ready.status_code == 200
    assert "checks" not in ready.json()


def test_gunicorns_access_line_names_the_decided_client_and_the_peer(servers):
    servers, logs = servers
    forwarded = {"X-Forwarded-For": "198.51.100.7"}

    requests.get(f"{servers['proxied']}/api/catalog/categories", headers=forwarded, timeout=10)
    requests.get(f"{servers['proxied']}/health", headers=forwarded, timeout=10)
    requests.get(f"{servers['direct']}/api/catalog/categories", headers=forwarded, timeout=10)

    def lines(name: str, path: str) -> list[str]:
        request_line = f'"GET {path} HTTP/1.1"'
        return [line for line in logs[name].output().splitlines() if request_line in line]

    wait_until(lambda: lines("proxied", "/health"), what="the access line of /health")
    for path in ("/api/catalog/categories", "/health"):
        [line] = lines("proxied", path)
        assert line.startswith("198.51.100.7 ") and line.endswith("peer=127.0.0.1"), line
    assert all(line.startswith("127.0.0.1 ") for line in lines("direct", "/api/catalog/categories"))
