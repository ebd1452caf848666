"""
`python manage.py deploy <action>`: the generated deployment files.

    render   write the split Kubernetes overlay and the compose gateways
    check    exit non-zero, naming each stale file, when the committed files
             differ from what the code generates (run by CI)

See cleave_tools.deploy.manifests for what is generated and deploy/README.md for using it.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave_tools.deploy import manifests

SPLIT_OVERLAY = Path("deploy/k8s/overlays/split")
COMPOSE = Path("deploy/compose")


class Command(BaseCommand):
    help = "Render or check the generated deployment files (split overlay, compose gateways)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in (
            ("render", "write the generated files"),
            ("check", "fail when a committed generated file is stale"),
        ):
            action = sub.add_parser(name, help=text)
            action.add_argument(
                "--output",
                type=Path,
                help=f"the split overlay's directory (default {SPLIT_OVERLAY})",
            )
            action.add_argument(
                "--compose-dir",
                type=Path,
                help=f"the compose files' directory, gateways in <dir>/gateway (default {COMPOSE})",
            )
            action.add_argument(
                "--namespace",
                help="the Kubernetes namespace (default the setting CLEAVE_K8S_NAMESPACE, "
                f"else {manifests.NAMESPACE_DEFAULT})",
            )

    def handle(self, *args, action, output, compose_dir, namespace, **options):
        root = Path(settings.BASE_DIR)
        output = output or root / SPLIT_OVERLAY
        compose_dir = compose_dir or root / COMPOSE
        try:
            targets = [
                (manifests.split_overlay(namespace), output, "*.yaml"),
                (manifests.compose_gateways(compose_dir), compose_dir / "gateway", "*.conf"),
            ]
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from None
        if action == "render":
            for files, directory, pattern in targets:
                for path in manifests.write(files, directory, pattern):
                    self.stdout.write(f"wrote {path}")
            return
        problems = [
            problem
            for files, directory, pattern in targets
            for problem in manifests.stale(files, directory, pattern)
        ]
        if problems:
            raise CommandError(
                "generated deployment files are stale (run `python manage.py deploy render`):\n  "
                + "\n  ".join(problems)
            )
        self.stdout.write("deployment files are current")
