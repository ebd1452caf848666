import re

from django.core.management.base import BaseCommand, CommandError

from cleave.security import issue_service_token

_PERMISSION = re.compile(r"^([a-z_]+|\*):(read|write|\*)$|^\*$")
# Service tokens cannot be revoked one by one (only by rotating the secret):
# a year is the longest an issued one may live.
MAX_TTL = 366 * 24 * 3600


class Command(BaseCommand):
    help = "Print a service JWT for X-Service-Token, e.g. --permissions analytics:read."

    def add_arguments(self, parser):
        parser.add_argument("--service", required=True, help="name of the calling service")
        parser.add_argument(
            "--permissions", default="", help="comma-separated, e.g. analytics:read,orders:write"
        )
        parser.add_argument(
            "--ttl", type=int, default=3600, help=f"lifetime in seconds (at most {MAX_TTL})"
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
        if not 0 < ttl <= MAX_TTL:
            raise CommandError(
                f"--ttl must be between 1 and {MAX_TTL} seconds (366 days): a service token "
                "cannot be revoked on its own, only by rotating CLEAVE_SERVICE_JWT_SECRET."
            )
        self.stdout.write(issue_service_token(service, perms, ttl=ttl))
