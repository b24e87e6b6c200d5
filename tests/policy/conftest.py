"""Fixtures shared with the hook tests (a real daemon that runs hooks) and the dashboard tests
(the scripted scene on an in-process daemon), and a daemon that keeps a journal."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bridges.conftest import deck  # noqa: F401  (fixtures, shared)
from tests.e2e.conftest import AgentDeck, place  # noqa: F401  (the fixture)
from tests.tui.conftest import runtime_dir, scene  # noqa: F401


@pytest.fixture
def journaled(tmp_path: Path) -> Iterator[AgentDeck]:
    """A real `taskdeck serve` with a journal (for history and restarts); stopping it also
    ends an agent and the hooks it left running."""
    with AgentDeck(tmp_path).running("--journal", str(tmp_path / "journal.sqlite3")) as served:
        yield served
