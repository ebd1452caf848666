"""
The route table of a split deployment, and the nginx gateway rendered from it.

Every context's API lives under `/api/<prefix>/` in whatever process serves
it, so the gateway routes by path alone and rewrites nothing: a client sees
the same paths as from the monolith. The whole admin (`/admin/`) goes to the
*admin console*: a web process of the same code with every context installed
and every context's database configured, so that an operator signs in once
and sees every context and every platform table as in the monolith (in a
monolith, the one process is its own console). What belongs to no one context
(static files, the OpenAPI document and Swagger UI, `/ready`) goes to the
*operations* upstream, the group of the first context, whose OpenAPI document
includes every group's operations; `/health` is answered by the gateway itself;
`/metrics` is never served through it (each process exposes its own to the
scraper inside the network).

Where each context runs comes from the same place the service client looks:
`<LABEL>_SERVICE_URL` (one URL, or several: one upstream server each),
else Kubernetes DNS, `http://<label>` (its Service listens on port 80); the
admin console likewise from `ADMIN_SERVICE_URL`, else `http://admin`, and
when every context has the same servers (a monolith behind a gateway), those.

The gateway's own refusals (a body, request line or header too large, a
request it cannot parse, a method it never passes on, an upstream it cannot
reach or that does not answer in time) are problem details like every
other error of the API (`error_page`), and its `Server` header names no
version (`server_tokens off`). What an upstream answers passes through as
it is: those errors are problem details already.

Rendered by hand: nginx has no library for its configuration; the template
is small and `nginx -t` checks what it prints (tests/tools/deploy/test_gateway.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from gunicorn.config import Keepalive

from cleave.calls.discovery import default_url, service_urls
from cleave.core.registry import ContextConfig, all_contexts
from cleave.http.problems import problem


@dataclass(frozen=True)
class Route:
    """One context's place behind the gateway."""

    context: str
    prefix: str  # "/api/orders/"
    servers: tuple[str, ...]  # "host:port" of each instance

    @property
    def upstream(self) -> str:
        return f"cleave_{self.context}"


def _server(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", ""):
        raise ValueError(f"the gateway proxies plain HTTP inside the network, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 80}"


def route_for(cfg: ContextConfig) -> Route:
    urls = service_urls(cfg.label) or [default_url(cfg.label)]
    return Route(
        context=cfg.label,
        prefix=f"/api/{cfg.url_prefix}/",
        servers=tuple(_server(url) for url in urls),
    )


ADMIN = "admin"


def admin_route(routes: list[Route]) -> Route:
    """
    Where the admin console runs: `ADMIN_SERVICE_URL`; else, when every
    context has the same servers (one process serves them all), those; else
    Kubernetes DNS, `http://admin`.
    """
    urls = service_urls(ADMIN)
    if urls:
        servers = tuple(_server(url) for url in urls)
    elif routes and len({route.servers for route in routes}) == 1:
        servers = routes[0].servers
    else:
        servers = (_server(default_url(ADMIN)),)
    return Route(context=ADMIN, prefix="/admin/", servers=servers)


def route_table(contexts: list[ContextConfig] | None = None) -> list[Route]:
    """A route per context known to this process, in INSTALLED_APPS order."""
    return [route_for(cfg) for cfg in (contexts if contexts is not None else all_contexts())]


@dataclass(frozen=True)
class Limits:
    """What the gateway allows a request."""

    body_size: str = "1m"
    connect_timeout: str = "3s"
    read_timeout: str = "30s"
    keepalive: int = 32
    # An idle upstream connection is dropped before gunicorn drops it (its
    # keep-alive, 2 s): reusing one gunicorn is closing fails the request,
    # and nginx passes a POST on to no other server, so the client got a 502
    # (once in 20,447 requests of bench/soak.py's 30 minutes).
    keepalive_timeout: str = f"{max(Keepalive.default - 1, 1)}s"


# The errors nginx itself answers: status, title, detail. 494 is nginx's own
# code for a request header too large; the client gets 431, as from gunicorn.
GATEWAY_ERRORS: tuple[tuple[int, str, str], ...] = (
    (400, "Bad request", "The request could not be parsed."),
    (404, "Not found", "No resource at this path."),
    (405, "Method not allowed", "The gateway does not pass this method on."),
    (413, "Request too large", "The request body is larger than allowed."),
    (414, "URI too long", "The request line (method and URL) is longer than the gateway accepts."),
    (431, "Request header fields too large", "The request's headers are larger than allowed."),
    (502, "Bad gateway", "The service behind the gateway could not be reached."),
    (503, "Service unavailable", "The service behind the gateway is unavailable."),
    (504, "Gateway timeout", "The service behind the gateway did not answer in time."),
)
# seconds a client is told to wait after the gateway's own 502, 503 or 504
GATEWAY_RETRY_AFTER = 1


ERROR_PAGES = "/_cleave/errors/"


def _error_pages() -> tuple[list[str], list[str]]:
    """
    The `error_page` directives, and the internal locations that answer them.
    By URI, not named locations: nginx cannot hand a request whose line it
    could not parse (400, 414) to a named location, and answers 500 instead.
    """
    directives, locations = [], []
    for status, title, detail in GATEWAY_ERRORS:
        page = f"{ERROR_PAGES}{status}"
        body = json.dumps(problem(status, title, detail))
        body = body.replace("\\", "\\\\").replace("'", "\\'")  # inside nginx's single quotes
        directives.append(f"    error_page {status} {page};")
        if status == 431:
            directives.append(f"    error_page 494 =431 {page};")
        locations += [
            f"    location = {page} {{",
            "        internal;",
            "        default_type application/problem+json;",
            "        add_header X-Request-ID $cleave_request_id always;",
            *(
                [f"        add_header Retry-After {GATEWAY_RETRY_AFTER} always;"]
                if status >= 500
                else []
            ),
            f"        return {status} '{body}';",
            "    }",
        ]
    return directives, locations


def render_nginx(
    routes: list[Route],
    *,
    listen: str = "8000",
    limits: Limits | None = None,
    standalone: str | None = None,
    service_host: bool = False,
    admin: Route | None = None,
) -> str:
    """
    The nginx configuration for `routes`, and `admin` (the admin console's
    place, `admin_route(routes)` when not given) for `/admin/`.

    Without `standalone`, an `http`-level snippet (upstreams, map, server) to
    include from an nginx.conf, as in a container image's conf.d. With
    `standalone=<directory>`, a whole nginx.conf that an unprivileged user can
    run in the foreground (`nginx -p <directory> -c <file>`), its pid, logs and
    temporary files under that directory.

    With `service_host`, each request reaches its upstream with `Host` set to
    the upstream's own name (a service mesh such as Istio routes by it) and the
    client's in `X-Forwarded-Host` (the processes then need
    `DJANGO_USE_X_FORWARDED_HOST=true` to build links with it); without, the
    client's `Host` is passed on as it came.
    """
    if not routes:
        raise ValueError("the route table is empty: no context to route to")
    limits = limits or Limits()
    ops = routes[0]
    lines: list[str] = [
        "# Generated by `manage.py gateway nginx` from the route table; do not edit.",
        "# A request id: the client's X-Request-ID, or nginx's own.",
        "map $http_x_request_id $cleave_request_id {",
        "    default $http_x_request_id;",
        '    "" $request_id;',
        "}",
        "",
    ]

    def upstream_host(route: Route) -> str:
        return route.servers[0].rsplit(":", 1)[0]

    admin = admin or admin_route(routes)
    for route in [*routes, admin]:
        lines.append(f"upstream {route.upstream} {{")
        lines += [f"    server {server} max_fails=1 fail_timeout=5s;" for server in route.servers]
        lines += [
            f"    keepalive {limits.keepalive};",
            f"    keepalive_timeout {limits.keepalive_timeout};",
            "}",
            "",
        ]
    error_pages, error_locations = _error_pages()
    lines += [
        "server {",
        f"    listen {listen};",
        "    server_name _;",
        "    server_tokens off;",
        f"    client_max_body_size {limits.body_size};",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    set $cleave_host $http_host;",
        "    proxy_set_header Host $cleave_host;",
        "    proxy_set_header X-Forwarded-Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header X-Request-ID $cleave_request_id;",
        f"    proxy_connect_timeout {limits.connect_timeout};",
        f"    proxy_read_timeout {limits.read_timeout};",
        f"    proxy_send_timeout {limits.read_timeout};",
        # a failed instance is skipped for idempotent requests only
        "    proxy_next_upstream error timeout http_502 http_503;",
        "    # the gateway's own errors are problem details; the upstreams' pass through",
        *error_pages,
        *error_locations,
        "",
        "    location = /health {",
        "        default_type application/json;",
        "        add_header X-Request-ID $cleave_request_id always;",
        '        return 200 \'{"status": "ok"}\';',
        "    }",
        "    location = /metrics {",
        "        default_type application/problem+json;",
        '        return 404 \'{"type": "https://cleave.dev/problems/not-found", '
        '"title": "Not found", "status": 404, '
        '"detail": "Metrics are scraped from each process, not through the gateway."}\';',
        "    }",
    ]

    def host(route: Route) -> list[str]:
        return [f"        set $cleave_host {upstream_host(route)};"] if service_host else []

    for route in [*routes, admin]:
        lines += [
            f"    location {route.prefix} {{",
            *host(route),
            f"        proxy_pass http://{route.upstream};",
            "    }",
        ]
    lines += [
        "    # the API's documents, static files, readiness",
        "    location / {",
        *host(ops),
        f"        proxy_pass http://{ops.upstream};",
        "    }",
        "}",
    ]
    body = "\n".join(lines) + "\n"
    if standalone is None:
        return body
    return _standalone(body, standalone)


def _standalone(http_body: str, prefix: str) -> str:
    indented = "\n".join(f"    {line}" if line else "" for line in http_body.splitlines())
    return (
        "# Generated by `manage.py gateway nginx --standalone`; do not edit.\n"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {prefix}/access.log;\n"
        f"    client_body_temp_path {prefix}/client_body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
        "    default_type application/octet-stream;\n"
        f"{indented}\n"
        "}\n"
    )
