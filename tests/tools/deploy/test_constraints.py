"""
constraints.txt pins every runtime dependency: each requirement of
pyproject.toml (and of the optional extra `consul`) has one `==` pin that
satisfies it, and the virtualenv the tests run in holds exactly the pinned
versions, so what is tested is what the image installs.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator and version, f"constraints.txt: {line!r} is not a pin (name==version)"
        key = canonicalize_name(name)
        assert key not in pins, f"constraints.txt pins {name} twice"
        pins[key] = version
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(text)
        for text in [*project["dependencies"], *project["optional-dependencies"]["consul"]]
    ]


def test_every_runtime_requirement_is_pinned_within_its_range():
    pins = _pins()
    for requirement in _runtime_requirements():
        key = canonicalize_name(requirement.name)
        assert key in pins, f"{requirement.name} is not pinned: run `make constraints`"
        assert requirement.specifier.contains(pins[key], prereleases=True), (
            f"{requirement.name}=={pins[key]} is outside {requirement}: run `make constraints`"
        )


def test_the_tests_run_the_pinned_versions():
    stale = []
    for key, version in sorted(_pins().items()):
        try:
            installed = metadata.version(key)
        except metadata.PackageNotFoundError:
            stale.append(f"{key}: not installed, pinned {version}")
            continue
        if installed != version:
            stale.append(f"{key}: {installed} installed, pinned {version}")
    assert not stale, "the virtualenv is not the pinned one (run `make install`):\n" + "\n".join(
        stale
    )
