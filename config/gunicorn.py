"""
Gunicorn hooks: `gunicorn -c python:config.gunicorn config.wsgi --bind ...`.

The master holds no Django (a worker that starts drops the metrics of those
that stopped: see cleave.runtime.bootstrap).
With CLEAVE_DISCOVERY=consul the master registers every context this process
serves in Consul once it listens (at its first bind, or CLEAVE_ADVERTISE_URL),
and deregisters them when it stops cleanly. Binds, workers and threads stay on
the command line. See docs/discovery.md.

A request gunicorn refuses before the application sees it (a request line or
headers too large, a line it cannot parse) is answered as problem details
(`application/problem+json`), like every error of the API, instead of
gunicorn's HTML page: the workers below keep gunicorn's status, reason, log
line and access line, and only rewrite the answer's body.

The access line names the client's address as the application decided it
(`cleave.core.proxies`: the peer, or what the trusted proxies say), not only the
peer, which behind the gateway is the gateway.
"""

import json
import os
import re
from pathlib import Path

from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

_registered: list[str] = []

# The access line (with --access-logfile): gunicorn's default, but it opens with
# the client's address as cleave.core.proxies decides it (cleave.observability.metrics leaves it in
# the environ) and ends with the connection's peer; `-` first for a request
# gunicorn refused before the application saw it.
access_log_format = (
    '%({cleave.client_address}e)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" peer=%(h)s'
)

# What each refusal tells the client; gunicorn's own message may repeat the
# client's input, which an answer need not echo back.
_DETAILS = {
    400: "The request could not be parsed.",
    403: "The request was refused.",
    414: "The request line (method and URL) is longer than the server accepts.",
    417: "The request's Expect header cannot be met.",
    431: "The request's headers are larger than the server accepts.",
    500: "The server failed to process the request.",
    501: "The request's transfer coding is not supported.",
}
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")


def problem_answer(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 answer carrying RFC 9457 problem details."""
    # imported here: the worker has loaded the application (and Django) by now
    from cleave.http.problems import PROBLEM_CONTENT_TYPE, problem

    body = json.dumps(problem(status, reason, _DETAILS.get(status, reason + "."))).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _ProblemSocket:
    """
    The client socket as gunicorn's error answer sees it: gunicorn writes its
    HTML page (gunicorn.util.write_error); what reaches the client is the same
    status as problem details. Everything else is the socket's own.
    """

    def __init__(self, sock, log) -> None:
        self._sock = sock
        self._log = log

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def sendall(self, data: bytes, *args) -> None:
        match = _STATUS_LINE.match(data)
        if match is not None:
            try:
                data = problem_answer(int(match.group(1)), match.group(2).decode("latin-1"))
            except Exception:  # gunicorn's own page is better than no answer
                self._log.exception("Could not answer gunicorn's error as problem details")
        self._sock.sendall(data, *args)


class ProblemDetailsErrors:
    """A gunicorn worker whose own error answers are problem details."""

    def handle_error(self, req, client, addr, exc):
        super().handle_error(req, _ProblemSocket(client, self.log), addr, exc)


class ProblemSyncWorker(ProblemDetailsErrors, SyncWorker):
    pass


class ProblemThreadWorker(ProblemDetailsErrors, ThreadWorker):
    pass


# gunicorn picks its worker from --worker-class and --threads (sync becomes
# gthread with more than one thread); the hooks below swap in the same worker
# with problem-details errors. Another class (gevent...) is left as it is.
_PROBLEM_WORKERS = {SyncWorker: ProblemSyncWorker, ThreadWorker: ProblemThreadWorker}


def _use_problem_workers(server) -> None:
    server.worker_class = _PROBLEM_WORKERS.get(server.worker_class, server.worker_class)


def _control_socket(server) -> str:
    """
    This server's own control socket: gunicorn's default path
    (~/.gunicorn/gunicorn.ctl) is one per user, so the servers of a split
    would share it ("Address already in use"). One per bind, under the
    process's data directory.
    """
    data_dir = os.environ.get("CLEAVE_DATA_DIR") or str(
        Path(__file__).resolve().parent.parent / "var"
    )
    bind = re.sub(r"[^A-Za-z0-9_.-]+", "-", server.cfg.bind[0]).strip("-")
    folder = Path(data_dir) / "run"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(folder / f"gunicorn-{bind}.ctl")


def on_starting(server) -> None:
    _use_problem_workers(server)
    # gunicorn's default path (not one given with --control-socket)
    if not server.cfg.control_socket_disable and Path(server.cfg.control_socket).name == (
        "gunicorn.ctl"
    ):
        server.cfg.set("control_socket", _control_socket(server))


def on_reload(server) -> None:
    # a reload (HUP) chooses the worker class again
    _use_problem_workers(server)


def when_ready(server) -> None:
    # the web role's bootstrap, for the master (each worker's is config/wsgi.py)
    from cleave.runtime import bootstrap

    _registered[:] = bootstrap.web_master(server.cfg.bind[0])


def on_exit(server) -> None:
    # After USR2 a new master serves the same binds under the same ids: the
    # old one leaves them registered.
    if not _registered or getattr(server, "reexec_pid", 0):
        return
    from cleave.calls.consul import deregister_local

    deregister_local(_registered)
    _registered.clear()
