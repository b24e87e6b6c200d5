"""What the dashboard loads when it runs: none of the daemon's side, none of the test scene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )
    return set(done.stdout.split())


def test_the_dashboard_pulls_in_no_registry_server_journal_or_scene() -> None:
    loaded = loaded_after(
        "from tui.app import make_app\nmake_app()\nimport core.client, core.runtime"
    )
    assert {"tui.deck", "tui.live", "tui.modes", "core.client"} <= loaded
    daemon_side = {"core.registry", "core.server", "core.journal", "core.context"}
    assert not daemon_side & loaded
    assert not {m for m in loaded if m.startswith("tui.screenshots")}


def test_the_glyph_table_and_the_mode_machine_need_no_textual() -> None:
    loaded = loaded_after("import core.glyphs, core.cli, tui.modes, tui.frames")
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "rich")}
