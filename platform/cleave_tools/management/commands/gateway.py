"""`manage.py gateway nginx`: the nginx gateway for the current route table."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cleave_tools.deploy.gateway import Limits, render_nginx, route_table

_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]:|[A-Za-z0-9.-]+:)?\d{1,5}$")
_SIZE = re.compile(r"^\d+[kKmMgG]?$")


class Command(BaseCommand):
    help = (
        "Print the nginx configuration of the gateway: /api/<prefix>/ and /admin/<label>/ "
        "to each context's upstream (<LABEL>_SERVICE_URL, else http://<label>)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="kind", required=True)
        nginx = sub.add_parser("nginx", help="nginx: an http-level snippet or a whole nginx.conf")
        nginx.add_argument("--listen", default="8000", help="port or address:port (8000)")
        nginx.add_argument(
            "--standalone",
            metavar="DIR",
            help="a whole nginx.conf run in the foreground with its pid, logs and "
            "temporary files under DIR",
        )
        nginx.add_argument("--body-size", default="1m", help="largest request body (1m)")
        nginx.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")

    def handle(self, *args, kind, listen, standalone, body_size, output, **options):
        if not _LISTEN.match(listen):
            raise CommandError(f"--listen must be a port or address:port, not {listen!r}")
        if not _SIZE.match(body_size):
            raise CommandError(f"--body-size must be like 1m or 512k, not {body_size!r}")
        prefix = None
        if standalone:
            prefix = str(Path(standalone).resolve())
        try:
            text = render_nginx(
                route_table(),
                listen=listen,
                limits=Limits(body_size=body_size),
                standalone=prefix,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if output:
            Path(output).write_text(text)
        else:
            self.stdout.write(text, ending="")
