"""
`python -m cleave.runtime.worker <celery worker options>`: a Celery worker of
the project's app (`CLEAVE_CELERY_APP`); `manage.py worker` becomes one.

It runs Celery's own `worker` command, with the same options, signals and
shutdown as `celery -A <app> worker`, without the rest of Celery's command
line: `celery` imports every subcommand first, among them the `amqp` shell and
its prompt_toolkit, about 13 MiB in each worker that a worker never uses
(bench/README.md, "Weight of a local split"). Written here because Celery has
no entry point for one subcommand alone; of `celery`'s group command it
replaces only loading the app and making the subcommand's context.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from cleave.runtime import bootstrap

    # before the settings load: a serving process never installs the tools
    bootstrap.declare("worker")
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker
    from django.conf import settings
    from django.utils.module_loading import import_string

    app = import_string(settings.CLEAVE_CELERY_APP)
    context = CLIContext(app=app, no_color=False, workdir=None, quiet=False)
    worker.main(args=argv, prog_name="celery worker", obj=context)


if __name__ == "__main__":
    main(sys.argv[1:])
