"""
Every CLEAVE_* setting is declared once (cleave.conf), read through that
declaration, and documented with the same default in docs/configuration.md:
these tests fail when the code, the declarations and the documentation drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cleave.core.conf import BY_NAME, SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "configuration.md"
SOURCES = [*ROOT.joinpath("platform").rglob("*.py"), *ROOT.joinpath("config").rglob("*.py")]
SOURCES += list(ROOT.joinpath("contexts").rglob("*.py"))

# A variable read from the environment by name, however it is read.
READ = re.compile(
    r'(?:environ\.get|environ\[|env_\w+|conf\.value|getenv|load_secret)\(?\s*"(CLEAVE_[A-Z0-9_]+)"'
)


def documented() -> dict[str, str]:
    """{name: its default cell} for every name in the first column of a table row."""
    found = {}
    for line in DOCS.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`(CLEAVE_[A-Z0-9_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1]) if len(cells) > 2 else []
        for index, name in enumerate(names):
            found[name] = defaults[index] if len(defaults) == len(names) else ""
    return found


def test_every_variable_the_code_reads_is_declared():
    read = {name for path in SOURCES for name in READ.findall(path.read_text())}
    assert read, "the pattern finds nothing: it is broken"
    assert sorted(read - set(BY_NAME)) == []


def test_every_declaration_is_read_somewhere():
    code = "\n".join(path.read_text() for path in SOURCES if path.name != "conf.py")
    unread = [setting.name for setting in SETTINGS if f'"{setting.name}"' not in code]
    assert unread == []


def test_every_declared_setting_is_documented_and_every_documented_one_declared():
    docs = documented()
    assert sorted(set(BY_NAME) - set(docs)) == []
    assert sorted(set(docs) - set(BY_NAME)) == []


def shown(setting: Setting) -> str:
    value = setting.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_the_documented_default_is_the_declared_one(setting):
    cell = documented().get(setting.name, "")
    if not cell or setting.default in ("", None) or setting.kind in ("path", "secret"):
        pytest.skip("no literal default to compare")
    if setting.kind == "bool":
        assert cell.lower() in ({"true", "on"} if setting.default else {"false", "off"}), cell
        return
    assert cell.lower() == shown(setting).lower(), (cell, setting.default)


def test_every_declaration_says_what_it_means():
    assert [setting.name for setting in SETTINGS if not setting.doc] == []


def test_a_bad_value_names_the_variable(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("CLEAVE_BREAKER_MIN_CALLS", "0")
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_BREAKER_MIN_CALLS must be at least 1"):
        BY_NAME["CLEAVE_BREAKER_MIN_CALLS"].read()


@pytest.mark.parametrize(
    ("name", "given", "read"),
    [
        ("CLEAVE_LOG_LEVEL", "warning", "WARNING"),
        ("CLEAVE_LOG_FORMAT", "PLAIN", "plain"),
        ("CLEAVE_EVENT_RELAY_IN_WORKER", "", False),
        ("CLEAVE_TRACING", "off", False),
        ("CLEAVE_RETRY_BASE", "0.25", 0.25),
    ],
)
def test_each_kind_reads_what_an_operator_writes(monkeypatch, name, given, read):
    monkeypatch.setenv(name, given)
    assert BY_NAME[name].read() == read
