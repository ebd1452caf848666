"""Load the consumers (and, in release 2, the orders code) of this process's release."""

import os

from django.apps import AppConfig


class RollingConfig(AppConfig):
    name = "tests.support.rolling"
    label = "rolling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cleave.core.registry import is_local

        from . import consumers

        release = int(os.environ.get("CLEAVE_TEST_RELEASE", "1"))
        consumers.install(release)
        if release >= 2 and is_local("orders"):
            consumers.publish_v2_shape()
