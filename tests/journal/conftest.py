"""Fixtures for the journal, restart, retention and reliability tests; heavy runs are opt-in."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

HEAVY = os.environ.get("TASKDECK_HEAVY") == "1"
"""True when the long load and fault variants should run (TASKDECK_HEAVY=1)."""

_FIGURES: dict[str, object] = {}
"""Figures the reliability tests measured in this run (counts, durations)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `heavy` unless TASKDECK_HEAVY=1."""
    if HEAVY:
        return
    skip = pytest.mark.skip(reason="heavy: set TASKDECK_HEAVY=1 to run")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the measured figures (and write them as JSON to $TASKDECK_FIGURES if set)."""
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, value in _FIGURES.items():
        terminalreporter.write_line(f"{name}: {json.dumps(value)}")
    out = os.environ.get("TASKDECK_FIGURES")
    if out:
        Path(out).write_text(json.dumps(_FIGURES, indent=2) + "\n")


@pytest.fixture
def figures() -> dict[str, object]:
    """Where a test records what it measured, for docs/RELIABILITY.md."""
    return _FIGURES


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal file inside a not-yet-created state dir under the test's tmp dir."""
    return tmp_path / "state" / "journal.sqlite3"
