"""The project's settings, plus the release a rolling-upgrade test process runs (see __init__)."""

import os

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

CLEAVE_CONTRACTS_PACKAGE = os.environ.get("CLEAVE_TEST_CONTRACTS_PACKAGE", "contracts")
INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.rolling.apps.RollingConfig"]
