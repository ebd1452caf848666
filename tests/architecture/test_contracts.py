"""
The contracts against the code: callees serve them, the map tells them, and
the shared kernel stays a kernel.

- every operation is served by a view that names it (so its permission is the
  contract's), its callers are contexts, its problems documented; each
  context's committed OpenAPI document is what its views describe;
- docs/context-map.md is what `manage.py contracts map` renders today;
- `contracts` imports no context and no config (import-linter).
"""

from __future__ import annotations

import configparser
import shutil
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from cleave.core.declarations import Problem
from cleave_tools.checks import conformance, contextmap
from cleave_tools.management.commands.contracts import (
    declaration_problems,
    default_contracts_dir,
    default_map_path,
    map_difference,
)
from contracts import catalog, inventory, payments
from tests.architecture.test_boundaries import (
    CONFIG,
    broken_contracts,
    lint_imports,
    report,
    write_module,
)

SHARED_KERNEL = "The contracts (shared kernel) import neither contexts nor config"


@pytest.fixture(scope="module")
def views():
    return conformance._views()


# --- callees against their contracts -----------------------------------------------------


def test_every_callee_serves_its_contract():
    assert declaration_problems() == []


def test_the_committed_openapi_documents_are_what_the_views_describe():
    call_command("contracts", "openapi", "--check")


def test_a_stale_openapi_document_fails_the_check(tmp_path, settings, monkeypatch):
    # a copy of the contracts whose inventory document lost a field of a request
    copy = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), copy)
    document = copy / "openapi" / "inventory.json"
    document.write_text(document.read_text().replace('"order_id"', '"order"', 1))
    monkeypatch.setattr(
        "cleave_tools.management.commands.contracts.default_contracts_dir", lambda: copy
    )

    with pytest.raises(CommandError, match="OpenAPI documents of inventory differ"):
        call_command("contracts", "openapi", "--check")


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            replace(inventory.RESERVATION_COMMIT, permission="inventory:read"),
            "its view (ReservationCommitView) does not name it: set `operation = "
            "inventory.RESERVATION_COMMIT` (or list it in `operations`)",
        ),
        (
            replace(catalog.PRODUCT_GET, permission="catalog:read"),
            "it needs catalog:read, but its view does not use ServicePermission",
        ),
        (
            replace(payments.CHARGE_CREATE, permission=None),
            "its view (ChargeView) does not name it: set `operation = "
            "payments.CHARGE_CREATE` (or list it in `operations`)",
        ),
        (
            replace(inventory.RESERVATION_CREATE, callers=("orders", "warehouse")),
            "its caller 'warehouse' is not a context",
        ),
        (
            replace(inventory.RESERVATION_CREATE, problems=(Problem(410, "gone"),)),
            "answers 410 (gone), which the view never does",
        ),
        (
            replace(inventory.RESERVATION_COMMIT, path="/reservations/{reservation_id}/hold"),
            "not in contracts/openapi/inventory.json (no view serves it, or the document is "
            "stale: `manage.py contracts openapi`)",
        ),
    ],
    ids=["permission", "public", "not-public", "caller", "problem", "path"],
)
def test_a_contract_that_disagrees_with_its_view_is_reported(views, operation, expected):
    problems = conformance.check_operation(operation, views)

    assert any(problem.endswith(expected) for problem in problems), problems


def test_the_verify_command_passes_on_the_project():
    call_command("contracts", "verify")


# --- the context map --------------------------------------------------------------------


def test_the_committed_context_map_is_what_the_contracts_say():
    difference = map_difference(default_map_path())

    assert difference == "", f"run `python manage.py contracts map`:\n{difference}"


def test_a_stale_context_map_fails_the_check(tmp_path):
    stale = tmp_path / "context-map.md"
    stale.write_text(
        default_map_path().read_text().replace("| **orders** | `orders` |", "| **orders** | `o` |")
    )

    with pytest.raises(CommandError, match=r"out of date with the contracts.*\n.*\n"):
        call_command("contracts", "map", "--check", "--path", str(stale))


def test_writing_the_map_fills_the_blocks_and_keeps_the_prose(tmp_path):
    blocks = "\n".join(
        f"Prose before {name}.\n<!-- generated: {name} -->\nold\n<!-- /generated: {name} -->"
        for name in contextmap.SECTIONS
    )
    path = tmp_path / "context-map.md"
    path.write_text(f"# Map\n\n{blocks}\n\nThe end.\n")

    call_command("contracts", "map", "--path", str(path))

    written = path.read_text()
    assert written.startswith("# Map\n\nProse before diagram.\n<!-- generated: diagram -->\n")
    assert written.endswith("<!-- /generated: calls -->\n\nThe end.\n")
    assert "\nold\n" not in written
    assert "| `order.cancelled` | 2 | orders |" in written
    assert "notifications (`on_order_confirmed`)" in written
    call_command("contracts", "map", "--check", "--path", str(path))


def test_a_map_without_its_generated_blocks_is_refused(tmp_path):
    path = tmp_path / "context-map.md"
    path.write_text("# Map\n\n<!-- generated: events -->\n<!-- /generated: events -->\n")

    with pytest.raises(CommandError, match="missing \\['diagram', 'contexts', 'operations'"):
        call_command("contracts", "map", "--check", "--path", str(path))


# --- the shared kernel's imports ---------------------------------------------------------


def kernel_config(root):
    """The project's root packages and the shared-kernel contract alone."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    for section in parser.sections():
        if section.startswith("importlinter:contract:") and not section.endswith(
            "contracts-shared-kernel"
        ):
            parser.remove_section(section)
    path = root / "kernel.ini"
    with path.open("w") as handle:
        parser.write(handle)
    return path


@pytest.fixture
def kernel_tree(tmp_path):
    write_module(tmp_path, "cleave")
    write_module(tmp_path, "config", "import cleave\n")
    write_module(tmp_path, "contracts", "import cleave\n")
    write_module(tmp_path, "contexts.orders", "import contracts\n")
    return tmp_path


def test_the_shared_kernel_may_import_the_platform(kernel_tree):
    result = lint_imports(kernel_tree, kernel_config(kernel_tree))

    assert result.returncode == 0, report(result)


@pytest.mark.parametrize("source", ["import contexts.orders\n", "from config import settings\n"])
def test_the_shared_kernel_importing_a_context_or_config_breaks_its_contract(kernel_tree, source):
    (kernel_tree / "contracts" / "orders.py").write_text(source)

    result = lint_imports(kernel_tree, kernel_config(kernel_tree))

    assert result.returncode != 0, report(result)
    assert broken_contracts(result.stdout) == {SHARED_KERNEL}, report(result)
