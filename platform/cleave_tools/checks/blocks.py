"""
Generated blocks inside a hand-written document.

A document such as docs/context-map.md or docs/configuration.md keeps its
prose by hand and has blocks that a tool writes:

    <!-- generated: NAME -->  ...  <!-- /generated: NAME -->

`fill()` renders each block anew and refuses a document whose blocks are not
exactly the expected ones, each once, so `--check` finds a stale document.
Written by hand: it is one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /generated: (?P=name) -->)",
    re.DOTALL,
)


def fill(template: str, names: Iterable[str], render: Callable[[str], str], *, what: str) -> str:
    """`template` with each block NAME replaced by `render(NAME)`; refuses a missing one."""
    names = list(names)
    found = [match.group("name") for match in BLOCK.finditer(template)]
    missing = [name for name in names if name not in found]
    unknown = sorted(set(found) - set(names))
    repeated = sorted({name for name in found if found.count(name) > 1})
    if missing or unknown or repeated:
        raise ValueError(
            f"{what} must hold each generated block once "
            f"(`<!-- generated: NAME -->` ... `<!-- /generated: NAME -->`); "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}, "
            f"repeated {repeated or 'none'}"
        )

    def replace(match: re.Match[str]) -> str:
        body = render(match.group("name")).rstrip("\n") + "\n"
        return f"{match.group(1)}{body}{match.group(4)}"

    return BLOCK.sub(replace, template)
