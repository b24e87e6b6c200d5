"""Fixtures for the journal, restart, retention and reliability tests; heavy runs are opt-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HEAVY = os.environ.get("TASKDECK_HEAVY") == "1"
"""True when the long load and fault variants should run (TASKDECK_HEAVY=1)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `heavy` unless TASKDECK_HEAVY=1."""
    if HEAVY:
        return
    skip = pytest.mark.skip(reason="heavy: set TASKDECK_HEAVY=1 to run")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal file inside a not-yet-created state dir under the test's tmp dir."""
    return tmp_path / "state" / "journal.sqlite3"
