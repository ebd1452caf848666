"""One bootstrap per process role; a serving process never loads the tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cleave.runtime import bootstrap

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys
{setup}
loaded = sorted(m for m in sys.modules if m == "cleave_tools" or m.startswith("cleave_tools."))
from django.conf import settings
from cleave.core import threads
print(json.dumps({{
    "tools": loaded,
    "installed": "cleave_tools" in settings.INSTALLED_APPS,
    "threads": sorted(s.name for s in threads.running()),
}}))
"""


MANAGE_PY = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
"""


def run(setup: str, tmp_path: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        cwd=ROOT,
        env={**os.environ, "CLEAVE_DATA_DIR": str(tmp_path), "DJANGO_DEBUG": "true", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_web_process_imports_nothing_of_the_tools(tmp_path):
    found = run("from config.wsgi import application", tmp_path)

    assert found["tools"] == []
    assert found["installed"] is False
    # the web role's bootstrap started the embedded scheduler, through the one owner
    assert found["threads"] == ["cleave-periodic"]


def test_a_web_process_without_the_embedded_scheduler_starts_no_thread(tmp_path):
    found = run("from config.wsgi import application", tmp_path, CLEAVE_EMBEDDED_SCHEDULER="off")

    assert found == {"tools": [], "installed": False, "threads": []}


def test_manage_py_has_the_tools(tmp_path):
    found = run(MANAGE_PY, tmp_path)

    assert found["installed"] is True


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown process role"):
        bootstrap.declare("janitor")
