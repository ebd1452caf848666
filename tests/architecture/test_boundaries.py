"""
The boundary contracts in importlinter.ini: they pass on the project, and they
really catch the imports they forbid.

The violation tests run `lint-imports` on a throw-away tree of packages, so a
broken contract is proven to turn the check red without touching the project.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "importlinter.ini"
CONTEXTS = ["users", "catalog", "inventory", "orders", "payments", "notifications", "analytics"]
# The venv's own lint-imports, next to the interpreter running the tests.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
if not LINT_IMPORTS.exists():
    LINT_IMPORTS = Path(shutil.which("lint-imports") or "lint-imports")

INDEPENDENCE = "Bounded contexts do not import each other"
PLATFORM_FORBIDDEN = "The platform (cleave) imports neither contexts nor config"
CONTEXTS_FORBIDDEN = "Contexts do not import the Django project (config)"
EVENTS_LAYERS = "The event package's modules depend only downwards (see docs/architecture.md)"
PLATFORM_LAYERS = "The platform's modules depend only downwards (see docs/architecture.md)"
PLATFORM_ACYCLIC = "No import cycle between any two modules or packages of the platform"

CONTEXT_SHAPE = [
    "__init__.py",
    "apps.py",
    "models.py",
    "commands.py",
    "queries.py",
    "handlers.py",
    "admin.py",
    "api/__init__.py",
    "api/urls.py",
    "migrations/__init__.py",
]


BOUNDARIES = {"contexts-independent", "platform-knows-no-shop", "contexts-not-config"}


def boundary_config(root: Path) -> Path:
    """
    The project's boundary contracts alone, for a throw-away tree: the layers
    contracts inside `cleave` name modules such a tree does not have.
    """
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    for section in parser.sections():
        if section.startswith("importlinter:contract:") and (
            section.removeprefix("importlinter:contract:") not in BOUNDARIES
        ):
            parser.remove_section(section)
    path = root / "boundaries.ini"
    with path.open("w") as handle:
        parser.write(handle)
    return path


def lint_imports(root: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with `root` as the only place project packages come from."""
    if config is None:
        config = CONFIG if root == PROJECT_ROOT else boundary_config(root)
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_module(root: Path, dotted: str, source: str = "") -> Path:
    """Create package `dotted` (with every parent package) and return its __init__.py."""
    path = root
    for part in dotted.split("."):
        path = path / part
        path.mkdir(exist_ok=True)
        init = path / "__init__.py"
        if not init.exists():
            init.write_text("")
    init = path / "__init__.py"
    if source:
        init.write_text(source)
    return init


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    """A minimal clean tree: `cleave`, `config`, `contracts` and seven empty context packages."""
    write_module(tmp_path, "cleave")
    write_module(tmp_path, "cleave.messaging", "import cleave\n")
    write_module(tmp_path, "config", "import cleave\n")
    write_module(tmp_path, "contracts", "import cleave.messaging\n")
    for name in CONTEXTS:
        write_module(tmp_path, f"contexts.{name}", "import cleave.messaging\n")
    return tmp_path


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def broken_contracts(output: str) -> set[str]:
    return {
        line.rsplit(" ", 1)[0].strip()
        for line in output.splitlines()
        if line.rstrip().endswith(" BROKEN")
    }


def test_the_projects_imports_keep_every_contract():
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    contracts = [name for name in parser.sections() if name.startswith("importlinter:contract:")]

    result = lint_imports(PROJECT_ROOT)

    assert result.returncode == 0, report(result)
    # the boundary contracts, the layers inside cleave and the acyclic check
    assert f"{len(contracts)} kept, 0 broken" in result.stdout, report(result)


def test_a_clean_fake_tree_keeps_every_contract(fake_tree):
    result = lint_imports(fake_tree)

    assert result.returncode == 0, report(result)


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("contexts.orders.commands", "from contexts.users import models\n", INDEPENDENCE),
        ("contexts.analytics.handlers", "import contexts.payments\n", INDEPENDENCE),
        ("cleave.messaging.publish", "from contexts import orders\n", PLATFORM_FORBIDDEN),
        ("cleave.calls.client", "from config import settings\n", PLATFORM_FORBIDDEN),
        ("contexts.users.views", "import config\n", CONTEXTS_FORBIDDEN),
    ],
    ids=["context-imports-context", "submodule", "cleave-contexts", "cleave-config", "ctx-config"],
)
def test_a_forbidden_import_breaks_its_contract(fake_tree, module, source, contract):
    package, _, name = module.rpartition(".")
    write_module(fake_tree, package)
    (fake_tree / Path(*package.split(".")) / f"{name}.py").write_text(source)

    result = lint_imports(fake_tree)

    assert result.returncode != 0, report(result)
    assert broken_contracts(result.stdout) == {contract}, report(result)


def test_an_indirect_import_through_a_third_package_still_breaks_independence(fake_tree):
    # orders -> cleave is allowed, but a chain orders -> users via a helper of
    # orders is still a dependency of orders on users.
    write_module(fake_tree, "contexts.orders.helpers", "import contexts.users.models\n")
    write_module(fake_tree, "contexts.users.models")

    result = lint_imports(fake_tree)

    assert result.returncode != 0, report(result)
    assert INDEPENDENCE in broken_contracts(result.stdout), report(result)
    assert "contexts.orders.helpers -> contexts.users.models" in result.stdout, report(result)


def test_a_copy_of_the_project_with_one_cross_context_import_is_refused(tmp_path):
    for source, target in [
        (PROJECT_ROOT / "platform" / "cleave", tmp_path / "cleave"),
        (PROJECT_ROOT / "contexts", tmp_path / "contexts"),
        (PROJECT_ROOT / "config", tmp_path / "config"),
        (PROJECT_ROOT / "contracts", tmp_path / "contracts"),
    ]:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    shortcut = tmp_path / "contexts" / "orders" / "shortcut.py"
    shortcut.write_text('"""A forbidden shortcut."""\n\nfrom contexts.users.models import *\n')

    result = lint_imports(tmp_path)

    assert result.returncode != 0, report(result)
    assert broken_contracts(result.stdout) == {INDEPENDENCE}, report(result)
    assert "contexts.orders.shortcut -> contexts.users.models" in result.stdout, report(result)


def copy_of_the_project(root: Path) -> Path:
    for source, target in [
        (PROJECT_ROOT / "platform" / "cleave", root / "cleave"),
        (PROJECT_ROOT / "platform" / "cleave_tools", root / "cleave_tools"),
        (PROJECT_ROOT / "contexts", root / "contexts"),
        (PROJECT_ROOT / "config", root / "config"),
        (PROJECT_ROOT / "contracts", root / "contracts"),
    ]:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_an_event_module_importing_one_above_it_breaks_the_layers_and_makes_a_cycle(tmp_path):
    root = copy_of_the_project(tmp_path)
    registry = root / "cleave" / "messaging" / "types.py"
    registry.write_text(registry.read_text() + "\nfrom cleave.messaging import publish  # noqa\n")

    result = lint_imports(root, CONFIG)

    assert result.returncode != 0, report(result)
    assert broken_contracts(result.stdout) == {EVENTS_LAYERS, PLATFORM_ACYCLIC}, report(result)
    assert "cleave.messaging.types -> cleave.messaging.publish" in result.stdout, report(result)


def test_an_import_inside_a_function_cannot_hide_an_upward_dependency(tmp_path):
    # the foundation asking the orchestration layer for something, lazily
    root = copy_of_the_project(tmp_path)
    contexts = root / "cleave" / "core" / "registry.py"
    contexts.write_text(
        contexts.read_text() + "\n\ndef _lazy():\n    from cleave.sagas import driver  # noqa\n"
    )

    result = lint_imports(root, CONFIG)

    assert result.returncode != 0, report(result)
    # the layers inside sagas and events break too: their lowest modules now
    # reach the engine's top through cleave.contexts
    assert {PLATFORM_LAYERS, PLATFORM_ACYCLIC} <= broken_contracts(result.stdout), report(result)
    assert "cleave.core.registry -> cleave.sagas.driver" in result.stdout, report(result)


def test_the_independence_contract_lists_every_context_of_the_project(settings):
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    listed = parser["importlinter:contract:contexts-independent"]["modules"].split()

    expected = [
        f"{settings.CLEAVE_CONTEXT_PACKAGE}.{name}" for name in settings.CLEAVE_ALL_CONTEXTS
    ]
    assert sorted(listed) == sorted(expected)


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_context_has_the_same_shape(context):
    package = PROJECT_ROOT / "contexts" / context

    missing = [name for name in CONTEXT_SHAPE if not (package / name).is_file()]

    assert not missing, f"contexts/{context} lacks {missing} (see contexts/users)"
