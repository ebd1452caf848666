"""
The operator's story (tests/support/console.py) in headless Chromium against
the monolith as `make run` serves it: one gunicorn web server on SQLite files,
the in-process bus, the embedded scheduler retrying what fails. The same
story runs against a split behind its gateway at the end of
tests/e2e/test_customer_story_split.py, on the split that test starts.

It builds its own installation (SQLite files in a temporary directory), so CI
runs it once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from cleave.testing import flows
from tests.e2e.test_customer_story import _mail_subjects
from tests.integration.conftest import live_secrets, make_live, migrated_template  # noqa: F401
from tests.support.browser import chromium
from tests.support.console import FAILING_FAST, Fault, operator_console_story
from tests.support.story import customer_story

pytestmark = [pytest.mark.e2e, flows]


def renamed_table(database: Path, table: str) -> Fault:
    """A table of one context's SQLite file renamed away and back, as a bad migration would."""

    def rename(old: str, new: str) -> None:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            conn.execute(f'ALTER TABLE "{old}" RENAME TO "{new}"')
            conn.commit()

    return Fault(
        cause=lambda: rename(table, f"{table}_away"), mend=lambda: rename(f"{table}_away", table)
    )


def screenshots(tmp_path: Path) -> Path:
    """Where the pages are saved: CLEAVE_SCREENSHOTS to keep them (docs/images), else the test's."""
    return Path(os.environ.get("CLEAVE_SCREENSHOTS") or tmp_path / "shots")


def test_the_operator_console_on_the_monolith(tmp_path, migrated_template, live_secrets):  # noqa: F811
    manager, live = make_live(tmp_path, "inprocess", migrated_template, live_secrets)
    try:
        # as `make run`: the web process also runs the periodic jobs (the sweep retries)
        live.env.update(FAILING_FAST, CLEAVE_EMBEDDED_SCHEDULER="on")
        live.manage("collectstatic", "--noinput")  # the admin's styles, as `make run` serves them
        live.start_web()
        story = customer_story(
            live.web_url,
            seed=lambda: live.manage("seed_demo"),
            mail_subjects=lambda: _mail_subjects(live.data_dir / "mail"),
            create_operator=live.create_operator,
        )
        with chromium(tmp_path) as driver:
            operator_console_story(
                driver,
                live.web_url,
                story,
                fault=renamed_table(live.data_dir / "analytics.sqlite3", "analytics_counter"),
                shots=screenshots(tmp_path),
                mode="monolith",
            )
    finally:
        manager.__exit__(None, None, None)
