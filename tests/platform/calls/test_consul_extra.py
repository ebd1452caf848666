"""
Consul is an optional extra (`pip install -e '.[consul]'`): a process that
does not discover through Consul never loads py-consul, and one that does
without it stops at start-up with an error naming the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def python(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """Run Python in the project as if py-consul were not installed."""
    blocker = tmp_path / "no-consul"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["consul"] = None\n')
    env = {key: value for key, value in os.environ.items() if key != "CLEAVE_DISCOVERY"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")])),
        CLEAVE_DATA_DIR=str(tmp_path / "data"),
        CLEAVE_EMBEDDED_SCHEDULER="off",
        **variables,
    )
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_process_that_does_not_use_consul_runs_without_the_extra(tmp_path):
    script = (
        "import os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
        "import django; django.setup()\n"
        "from config import gunicorn\n"  # the hooks import cleave.calls.consul
        "from cleave.calls.consul import register_local\n"
        "print(register_local('127.0.0.1:8000'), sys.modules.get('consul'))\n"
    )

    result = python(tmp_path, "-c", script)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["[]", "None"]


def test_consul_discovery_without_the_extra_stops_the_process_naming_it(tmp_path):
    result = python(tmp_path, "manage.py", "check", CLEAVE_DISCOVERY="consul")

    assert result.returncode == 2
    assert result.stderr == (
        "Configuration error: CLEAVE_DISCOVERY=consul needs the optional extra `consul` "
        "(the module 'consul' is not installed): pip install -e '.[consul]'\n"
    )
