import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave.auth.tokens import issue_service_token

_PERMISSION = re.compile(r"^([a-z_]+|\*):(read|write|\*)$|^\*$")


class Command(BaseCommand):
    help = "Print a service JWT for X-Service-Token, e.g. --permissions analytics:read."

    def add_arguments(self, parser):
        parser.add_argument("--service", required=True, help="name of the calling service")
        parser.add_argument(
            "--permissions", default="", help="comma-separated, e.g. analytics:read,orders:write"
        )
        parser.add_argument(
            "--ttl",
            type=int,
            default=None,
            help="lifetime in seconds (default and most: CLEAVE_SERVICE_TOKEN_MAX_TTL, 3600)",
        )

    def handle(self, *args, service, permissions, ttl, **options):
        if not re.match(r"^[A-Za-z0-9_.-]{1,60}$", service):
            raise CommandError("--service must be 1-60 letters, digits, '.', '_' or '-'.")
        perms = [p.strip() for p in permissions.split(",") if p.strip()]
        bad = [p for p in perms if not _PERMISSION.match(p)]
        if bad:
            raise CommandError(
                f"Invalid permission(s) {bad}: use <context>:read or <context>:write."
            )
        # a service token cannot be revoked on its own (only all of them, by rotating
        # CLEAVE_SERVICE_JWT_SECRET): the services refuse one that lives longer
        most = settings.CLEAVE_SERVICE_TOKEN_MAX_TTL
        ttl = most if ttl is None else ttl
        if not 0 < ttl <= most:
            raise CommandError(
                f"--ttl must be between 1 and {most} seconds (CLEAVE_SERVICE_TOKEN_MAX_TTL): a "
                "service token cannot be revoked on its own, and the services refuse one that "
                "lives longer."
            )
        self.stdout.write(issue_service_token(service, perms, ttl=ttl))
