"""
The contracts against the code: callees serve them, the map tells them, and
the shared kernel stays a kernel.

- every operation agrees with the view serving it (drf-spectacular's schema of
  the view) and every declared call is granted; a contract that posts a field
  the callee does not take is caught;
- docs/context-map.md is what `manage.py contracts map` renders today;
- `contracts` imports no context and no config (import-linter).
"""

from __future__ import annotations

import configparser
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from cleave.core.declarations import STRING, UUID, obj
from cleave_tools.checks import conformance, contextmap
from cleave_tools.management.commands.contracts import (
    declaration_problems,
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
def document():
    return conformance.openapi_document()


# --- callees against their contracts -----------------------------------------------------


def test_every_callee_serves_its_contract_and_every_call_is_granted():
    assert declaration_problems() == []


def test_a_contract_posting_a_field_the_callee_does_not_take_fails_the_check(document):
    broken = replace(
        inventory.RESERVATION_RELEASE,
        request=obj({"reason": STRING, "colour": STRING}, required=[]),
    )

    problems = conformance.check_operation(broken, document)

    assert problems == [
        "inventory.reservation_release (POST /api/inventory/reservations/{reservation_id}"
        "/release): request.colour: the view does not take this field"
    ]


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            replace(payments.CHARGE_CREATE, request=obj({"order_id": STRING})),
            "request.order_id: the view takes format uuid, the contract sends any string",
        ),
        (
            replace(payments.CHARGE_VOID, request=obj({"idempotency_key": STRING})),
            "request.order_id: the view requires it, the contract does not",
        ),
        (
            replace(inventory.RESERVATION_RELEASE, request=obj({"reason": STRING})),
            "request.reason: the contract requires it, the view does not",
        ),
        (
            replace(inventory.RESERVATION_COMMIT, permission="inventory:read"),
            "the view requires inventory:write, the contract says inventory:read",
        ),
        (
            replace(catalog.PRODUCT_GET, permission="catalog:read"),
            "the view requires nothing (public), the contract says catalog:read",
        ),
        (
            replace(inventory.RESERVATION_GET, answer=obj({"id": UUID, "holder": STRING})),
            "answer 200.holder: the view does not answer this field",
        ),
        (
            replace(inventory.RESERVATION_CREATE, statuses=(202,)),
            "the view never answers 202",
        ),
        (
            replace(catalog.PRODUCT_LIST, query=obj({"page": STRING}, required=[])),
            "query.page: the contract sends string, the view takes integer",
        ),
        (
            replace(inventory.RESERVATION_COMMIT, path="/reservations/{reservation_id}/hold"),
            "no view serves this path and method",
        ),
    ],
    ids=[
        "format",
        "required-by-the-view",
        "required-by-the-contract",
        "permission",
        "public",
        "answer-field",
        "status",
        "query-type",
        "path",
    ],
)
def test_a_contract_that_disagrees_with_its_view_is_reported(document, operation, expected):
    problems = conformance.check_operation(operation, document)

    assert any(problem.endswith(expected) for problem in problems), problems


def test_a_declared_call_without_its_grant_is_reported(settings):
    settings.CLEAVE_SERVICE_GRANTS = {**settings.CLEAVE_SERVICE_GRANTS, "orders": ["users:read"]}

    problems = declaration_problems()

    assert (
        "orders calls inventory.reservation_create without inventory:write in CLEAVE_SERVICE_GRANTS"
    ) in problems


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
