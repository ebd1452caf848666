"""
What gunicorn refuses before the application sees it (a request line or
headers too large, a request line it cannot parse) is answered as problem
details, as the application answers, on a real gunicorn started the way
production starts it (`-c python:config.gunicorn`), with the sync worker and
with the threaded one.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import requests

from tests.support.live import GUNICORN, Process, free_port, wait_until


@pytest.fixture(scope="module", params=[1, 2], ids=["sync", "gthread"])
def server(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"gunicorn-{request.param}")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith("PYTEST")
    }
    env.update(
        CLEAVE_DATA_DIR=str(root / "data"),
        CLEAVE_EMBEDDED_SCHEDULER="off",
        CLEAVE_TRACING="off",
        CLEAVE_LOG_FORMAT="plain",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    port = free_port()
    args = [GUNICORN, "-c", "python:config.gunicorn", "config.wsgi"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", str(request.param)]
    web = Process("gunicorn", args, env, root / "gunicorn.log")
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if not web.alive():
            raise AssertionError(f"gunicorn exited:\n{web.output()[-4000:]}")
        try:
            return requests.get(f"{base}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=60, what="gunicorn")
        yield port, web
    finally:
        web.stop()


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as it is; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "status", "title"),
    [
        (
            b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
            414,
            "URI Too Long",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "Request Header Fields Too Large",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-H%d: 1\r\n" % n for n in range(150))
            + b"\r\n",
            431,
            "Request Header Fields Too Large",
        ),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "Bad Request"),
    ],
    ids=["request-line-too-long", "header-too-large", "too-many-headers", "unparsable"],
)
def test_gunicorns_own_refusals_are_problem_details(server, raw, status, title):
    port, web = server

    answered, headers, body = exchange(port, raw)

    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["title"] == title
    assert problem["type"].startswith("https://cleave.dev/problems/")
    assert problem["detail"]
    assert b"aaaa" not in body  # the client's input is not echoed
    assert web.alive()


def test_the_application_still_answers_after_a_refusal(server):
    port, _web = server
    exchange(port, b"NOT A REQUEST LINE\r\n\r\n")

    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_on_gunicorn_a_probe_answers_every_method_as_the_api_does(server, path):
    port, _web = server
    base = f"http://127.0.0.1:{port}{path}"

    head = requests.head(base, timeout=10)
    options = requests.options(base, timeout=10)
    refused = {method: requests.request(method, base, timeout=10) for method in ("TRACE", "DELETE")}

    assert head.status_code == 200 and head.content == b""
    assert options.status_code == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS"
    for response in refused.values():
        assert response.status_code == 405
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 405


def test_on_gunicorn_a_schema_format_no_renderer_takes_is_a_json_problem(server):
    port, _web = server

    response = requests.get(f"http://127.0.0.1:{port}/api/schema/?format=xml", timeout=30)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404
