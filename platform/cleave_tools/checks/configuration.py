"""
docs/configuration.md's tables, generated from the declared settings, and the
code checked against the declarations.

Every environment variable is declared once: the platform's in
`cleave.core.conf`, a context's in `contexts/<label>/conf.py`. The page's
prose is written by hand; only the blocks between

    <!-- generated: NAME -->  ...  <!-- /generated: NAME -->

are rendered from the declarations (NAME is a section of
`cleave.core.conf.SECTIONS`, or `shop` for the contexts' own settings), so
`manage.py configuration --check` finds a page that no longer says what the
declarations do. It also reads the code: a variable read from the environment
(`os.environ`, `conf.value`, the `env_*` readers) that nobody declared, and a
`CLEAVE_*` declaration that nothing reads, are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cleave.core.conf import SECTIONS, Setting, declarations
from cleave_tools.checks import blocks

SHOP = "shop"
BLOCKS = (*SECTIONS, SHOP)
PLATFORM = "cleave"
# Variables read from the environment that are no settings: what a process sets
# for a library, and the defaults of a developer's command line.
NOT_SETTINGS = {
    "PROMETHEUS_MULTIPROC_DIR": "set by config/settings.py from CLEAVE_METRICS_DIR",
    "PORT": "the default of `manage.py run_split --port` (make run-split)",
    "SPLIT": "the default of `manage.py run_split --layout` (make run-split)",
}
# A variable read by name, however it is read.
_READ = re.compile(
    r"(?:os\.environ\.get|os\.environ\[|os\.getenv|env_\w+|conf\.value|load_secret)\(?\s*"
    r"[\"']([A-Z][A-Z0-9_<>]*)[\"']"
)


@dataclass(frozen=True)
class Declared:
    """A declaration and who made it: `cleave` (the platform) or a context's label."""

    owner: str
    setting: Setting


def gather(*, package: str, labels: Iterable[str]) -> list[Declared]:
    """Every declaration, the platform's first, then each context's in `labels` order."""
    return [
        Declared(owner, setting)
        for owner, settings in declarations(package=package, labels=labels).items()
        for setting in settings
    ]


# --- rendering ----------------------------------------------------------------------------


def render(template: str, declared: list[Declared]) -> str:
    """`template` with every generated block rendered anew; refuses a missing block."""
    unplaced = [
        d.setting.name
        for d in declared
        if d.owner == PLATFORM and d.setting.section not in SECTIONS
    ]
    if unplaced:
        raise ValueError(f"declared without a known section ({', '.join(SECTIONS)}): {unplaced}")

    def block(name: str) -> str:
        if name == SHOP:
            return _table([d for d in declared if d.owner != PLATFORM], owners=True)
        return _table([d for d in declared if d.owner == PLATFORM and d.setting.section == name])

    return blocks.fill(template, BLOCKS, block, what="docs/configuration.md")


def shown(setting: Setting) -> str:
    """The default as the documentation shows it."""
    if setting.shown:
        return setting.shown
    default = setting.default
    if setting.kind == "secret":
        return f"generated, kept in `<CLEAVE_DATA_DIR>/{default}`" if default else "unset"
    if isinstance(default, bool):
        return "`on`" if default else "`off`"
    if default is None or default == "":
        return "unset"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(declared: list[Declared], *, owners: bool = False) -> str:
    """One row per meaning: variables that share their doc line share a row."""
    rows: dict[tuple[str, str], list[Declared]] = {}
    for item in declared:
        rows.setdefault((item.owner, item.setting.doc), []).append(item)
    header = (
        ["variable", "context", "default", "meaning"]
        if owners
        else ["variable", "default", "meaning"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (owner, doc), items in rows.items():
        names = ", ".join(f"`{item.setting.name}`" for item in items)
        defaults = ", ".join(shown(item.setting) for item in items)
        cells = [names, owner, defaults] if owners else [names, defaults]
        lines.append("| " + " | ".join([*cells, _cell(doc)]) + " |")
    return "\n".join(lines)


# --- the code against the declarations -------------------------------------------------------


def sources(root: Path) -> list[Path]:
    """The code that may read the environment: the platform, the project, the contexts."""
    found = [root / "manage.py"]
    for folder in ("platform", "config", "contexts"):
        found += sorted((root / folder).rglob("*.py"))
    return [path for path in found if path.is_file()]


def _is_declarations(path: Path) -> bool:
    return path.name == "conf.py" and path.parent.name != "config"


def undeclared(paths: Iterable[Path], declared: list[Declared]) -> dict[str, list[str]]:
    """{variable: the files that read it} for each variable read that nobody declared."""
    names = {d.setting.name for d in declared}
    patterns = [
        re.compile("^" + re.sub(r"<[A-Z]+>", "[A-Z]+", re.escape(d.setting.name)) + "$")
        for d in declared
        if d.setting.is_pattern
    ]
    found: dict[str, list[str]] = {}
    for path in paths:
        for name in sorted(set(_READ.findall(path.read_text()))):
            if name in names or name in NOT_SETTINGS or any(p.match(name) for p in patterns):
                continue
            found.setdefault(name, []).append(str(path))
    return found


def unread(paths: Iterable[Path], declared: list[Declared]) -> list[str]:
    """The `CLEAVE_*` declarations (and patterns) that no code reads."""
    code = "\n".join(path.read_text() for path in paths if not _is_declarations(path))
    missing = []
    for item in declared:
        name = item.setting.name
        if item.setting.is_pattern:
            suffix = re.split(r"<[A-Z]+>", name)[-1]
            read = f'{suffix}"' in code or f'"{name}"' in code
        elif name.startswith("CLEAVE_"):
            read = any(f"{quote}{name}{quote}" in code for quote in "\"'") or (
                f"settings.{name}" in code
            )
        else:
            continue  # Django's, Celery's, OpenTelemetry's: their libraries read them
        if not read:
            missing.append(name)
    return missing


def problems(root: Path, declared: list[Declared]) -> list[str]:
    """What the code and the declarations disagree on, one line each."""
    paths = sources(root)
    found = [
        f"{name} is read from the environment but declared nowhere ({', '.join(files)}): "
        f"declare it in cleave/core/conf.py or in its context's conf.py"
        for name, files in sorted(undeclared(paths, declared).items())
    ]
    found += [f"{name} is declared but nothing reads it" for name in unread(paths, declared)]
    return found
