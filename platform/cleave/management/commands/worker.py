"""
`manage.py worker --contexts orders,payments [celery worker options]`

A Celery worker for the named contexts' queues. Labels are mapped to the real
queue names (after `CLEAVE_EVENT_QUEUE_PREFIX`), so a worker can never consume
a new, empty queue while the context's events pile up in the prefixed one; an
unknown or unserved label is refused. The platform's default queue (periodic
jobs) is consumed too unless `--no-default-queue`. The process then becomes
`python -m cleave.runtime.worker -Q <queues> ...`, Celery's `worker` command for
the project's app (exec: signals reach Celery itself).
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave.messaging.broker.topology import queue_name


class Command(BaseCommand):
    help = "Run a Celery worker consuming the queues of the named contexts."

    def add_arguments(self, parser):
        parser.add_argument(
            "--contexts",
            required=True,
            help="comma-separated context labels (each must be served: CLEAVE_CONTEXTS)",
        )
        parser.add_argument(
            "--no-default-queue",
            action="store_true",
            help="leave the platform's default queue (periodic jobs) to other workers",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print the celery command instead of running it"
        )
        parser.add_argument(
            "celery_args",
            nargs="*",
            metavar="CELERY OPTION",
            help="further `celery worker` options, after `--` (e.g. -- --pool threads -c 8)",
        )

    def handle(self, *args, contexts, no_default_queue, dry_run, celery_args, **options):
        labels = [label.strip() for label in contexts.split(",") if label.strip()]
        if not labels:
            raise CommandError("--contexts names no context")
        known = settings.CLEAVE_ALL_CONTEXTS
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise CommandError(f"unknown contexts {unknown}; known: {known}")
        unserved = [label for label in labels if label not in settings.CLEAVE_CONTEXTS]
        if unserved:
            raise CommandError(
                f"this process does not serve {unserved} (CLEAVE_CONTEXTS="
                f"{','.join(settings.CLEAVE_CONTEXTS)}): their handlers and databases are "
                "not here"
            )
        if any(arg in ("-Q", "--queues") or arg.startswith("--queues=") for arg in celery_args):
            raise CommandError("queues come from --contexts; do not pass -Q")
        queues = [queue_name(label) for label in labels]
        if not no_default_queue:
            queues.append(settings.CELERY_TASK_DEFAULT_QUEUE)
        argv = [
            sys.executable,
            "-m",
            "cleave.runtime.worker",
            "-Q",
            ",".join(queues),
            # unique per process (exec keeps the pid): two workers of the same
            # contexts on one host must not share a node name, whose control
            # queue RabbitMQ lets only one connection hold
            "-n",
            f"{'+'.join(labels)}-{os.getpid()}@%h",
            *celery_args,
        ]
        if not any(
            arg in ("-l", "--loglevel") or arg.startswith("--loglevel=") for arg in celery_args
        ):
            # the business facts (orders confirmed, sagas ended) are logged at INFO
            argv += ["-l", "INFO"]
        if dry_run:
            self.stdout.write(" ".join(argv[1:]))
            return
        sys.stdout.flush()
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, arguments checked
