"""
docs/walkthrough.md, followed literally: its shell blocks (those fenced
```` ```sh ````; the split's ```` ```sh split ```` block is left out) run in bash
against a live monolith (`make run`'s shape: gunicorn on the in-process bus,
SQLite files and file-based mail in a data directory, the demo data seeded),
and what the walkthrough's comments say shows in the output.

Only the base URL, the data directory and `manage` (this interpreter, on the
live system's data) are set after the setup block, to reach this installation
instead of `make run`'s.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import live_secrets, make_live, migrated_template  # noqa: F401
from tests.support.live import ROOT

pytestmark = [pytest.mark.e2e]

WALKTHROUGH = ROOT / "docs" / "walkthrough.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def shell_blocks(text: str, *, kinds: tuple[str, ...] = ("sh",)) -> list[str]:
    """The bodies of the fenced blocks whose info string is one of `kinds`, in order."""
    return [body for info, body in FENCE.findall(text) if info.strip() in kinds]


def test_the_walkthrough_has_a_setup_block_then_the_story():
    blocks = shell_blocks(WALKTHROUGH.read_text())
    assert len(blocks) >= 2
    assert "poll()" in blocks[0] and "manage()" in blocks[0]
    assert "DATA=var/split" in shell_blocks(WALKTHROUGH.read_text(), kinds=("sh split",))[0]


def script_for(base_url: str, data_dir: Path) -> str:
    setup, *story = shell_blocks(WALKTHROUGH.read_text())
    here = (
        f"B={shlex.quote(base_url)}\n"
        f"DATA={shlex.quote(str(data_dir))}\n"
        f'manage() {{ {shlex.quote(sys.executable)} manage.py "$@"; }}\n'
    )
    return "set -eo pipefail\n" + setup + here + "\n".join(story)


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "jq")),
    reason="the walkthrough needs bash, curl and jq",
)
def test_the_walkthrough_runs_against_the_monolith(tmp_path, migrated_template, live_secrets):  # noqa: F811
    manager, live = make_live(tmp_path, "inprocess", migrated_template, live_secrets)
    try:
        live.manage("seed_demo")
        live.start_web()
        result = subprocess.run(
            ["bash", "-c", script_for(live.web_url, live.data_dir)],
            cwd=ROOT,
            env=live.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        manager.__exit__(None, None, None)
    out = result.stdout
    assert result.returncode == 0, f"{out[-4000:]}\n{result.stderr[-4000:]}"
    assert "poll gave up" not in result.stderr

    lines = out.splitlines()
    # 2. the search finds exactly what the text says: one product, the hoodie
    assert out.count('"sku": "') == 1
    assert '"name": "Merino Zip Hoodie"' in out
    stock = [line for line in lines if line.startswith('{"sku":"APP-HOD-002","on_hand"')]
    assert [re.search(r'"available":(\d+)', line)[1] for line in stock] == ["100", "98", "98"]
    # 3. bought, the same key answers the same order, another body is refused
    assert '{"status":"confirmed","total":"178.00"}' in lines
    assert "https://cleave.dev/problems/idempotency-key-reused" in lines
    assert '{"status":"captured","amount":"178.00","currency":"EUR"}' in lines
    kinds = sorted(line.split()[0] for line in lines if re.match(r"^[a-z_]+  \S", line))
    assert kinds == ["order_confirmed", "verify_email", "welcome"]
    # 4. declined
    assert '{"status":"cancelled","cancellation_reason":"payment_declined"}' in lines
    # 5. verified; a password change ends the earlier tokens, the new pair works
    assert "true" in lines
    assert '["access","expires_in","refresh","token_type"]' in lines
    assert lines.count("401") == 3  # /me and refresh after the change, /me after deletion
    assert lines.count('"The token was revoked."') == 2
    assert '"0.00"' in lines
    assert '{"email":"ada@lovelace.org","name":"Ada Lovelace"}' in lines
    assert "204" in lines
