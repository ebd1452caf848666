"""
docs/configuration.md's tables come from the declared settings, and the code
reads no variable that nobody declared: `manage.py configuration --check`
(run by `make lint`) refuses a stale page, an undeclared read and a
declaration nothing reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from cleave.core.conf import Setting
from cleave_tools.checks import configuration
from cleave_tools.checks.configuration import Declared

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "configuration.md"


def declared() -> list[Declared]:
    return configuration.gather(
        package=settings.CLEAVE_CONTEXT_PACKAGE, labels=settings.CLEAVE_ALL_CONTEXTS
    )


def test_the_committed_page_says_what_the_declarations_say(capsys):
    call_command("configuration", "--check")

    assert "up to date" in capsys.readouterr().out


def test_the_code_reads_no_undeclared_variable_and_each_declaration_is_read():
    assert configuration.problems(ROOT, declared()) == []


def test_a_stale_table_is_refused_and_rewritten(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text(DOCS.read_text().replace("| `CLEAVE_RETRY_ATTEMPTS` | `3` |", "| x | y |"))

    with pytest.raises(CommandError, match="out of date with the declared settings"):
        call_command("configuration", "--check", "--path", str(stale))
    call_command("configuration", "--path", str(stale))

    assert stale.read_text() == DOCS.read_text()


def test_a_page_without_one_of_the_blocks_is_refused():
    page = DOCS.read_text().replace("<!-- generated: shop -->", "")

    with pytest.raises(ValueError, match=r"missing \['shop'\]"):
        configuration.render(page, declared())


def test_a_variable_read_but_declared_nowhere_is_found(tmp_path):
    code = tmp_path / "reader.py"
    code.write_text(
        "import os\n"
        'a = os.environ.get("CLEAVE_NOWHERE")\n'
        'b = conf.value("CLEAVE_RETRY_BASE")\n'  # declared
        'c = os.environ.get("ORDERS_DATABASE_URL")\n'  # a pattern's
        'd = request.environ.get("HTTP_HOST")\n'  # a request's, not the process's
    )

    assert configuration.undeclared([code], declared()) == {"CLEAVE_NOWHERE": [str(code)]}


def test_a_declaration_nothing_reads_is_found(tmp_path):
    code = tmp_path / "reader.py"
    code.write_text("x = settings.CLEAVE_RETRY_BASE\n")
    unused = Setting("CLEAVE_FORGOTTEN", "int", default=1, doc="read by nothing")
    read = Setting("CLEAVE_RETRY_BASE", "float", default=1, doc="read as a setting")

    found = configuration.unread([code], [Declared("cleave", unused), Declared("cleave", read)])

    assert found == ["CLEAVE_FORGOTTEN"]


def test_variables_sharing_their_meaning_share_a_row():
    page = DOCS.read_text()

    assert "| `CLEAVE_RETRY_BASE`, `CLEAVE_RETRY_MAX` | `0.1`, `1` |" in page
    assert "| `CLEAVE_CURRENCY` | catalog | `EUR` |" in page


@pytest.mark.parametrize(
    ("setting", "cell"),
    [
        (Setting("A", "bool", default=True), "`on`"),
        (Setting("A", "float", default=30.0), "`30`"),
        (Setting("A", "str", default=""), "unset"),
        (
            Setting("A", "secret", default="jwt_secret"),
            "generated, kept in `<CLEAVE_DATA_DIR>/jwt_secret`",
        ),
        (Setting("A", "path", default="", shown="`<project>/var`"), "`<project>/var`"),
    ],
)
def test_a_default_is_shown_as_an_operator_reads_it(setting, cell):
    assert configuration.shown(setting) == cell
