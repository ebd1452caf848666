#!/usr/bin/env python
"""
Django's command-line utility for administrative tasks.

`manage.py --split <command>` runs the command against the split that `make
run-split` started (its databases, its data directory, its broker): the
environment it wrote to `<CLEAVE_DATA_DIR>/split/cleave.env`.
"""

import os
import sys
from pathlib import Path

SPLIT_FLAG = "--split"


def _use_the_split() -> None:
    """Apply `split/cleave.env` (written by `make run-split`) to this process's environment."""
    data_dir = Path(os.environ.get("CLEAVE_DATA_DIR") or Path(__file__).resolve().parent / "var")
    env_file = data_dir / "split" / "cleave.env"
    if not env_file.is_file():
        sys.stderr.write(
            f"No split to reach: {env_file} does not exist. Start one with `make run-split` "
            "(it writes that file), or set CLEAVE_DATA_DIR to the data directory it used.\n"
        )
        sys.exit(2)
    for line in env_file.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            os.environ[name.strip()] = value
    # the split's console serves every context: none may be narrowed here
    os.environ.pop("CLEAVE_CONTEXTS", None)


def main() -> None:
    if SPLIT_FLAG in sys.argv[1:]:
        sys.argv.remove(SPLIT_FLAG)
        _use_the_split()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a bad setting: say which, without a traceback
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
