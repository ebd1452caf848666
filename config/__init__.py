"""
The Django project.

The Celery app (`config.celery.app`) is loaded where it is used, not on
importing the package: the platform finds it by `CLEAVE_CELERY_APP`, and
`celery -A config` finds `config.celery` by itself. A gunicorn master
(which imports `config.gunicorn`) then holds no Celery, kombu or YAML: about
12 MiB less in each (bench/README.md, "Weight of a local split").
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
