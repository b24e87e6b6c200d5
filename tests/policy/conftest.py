"""Fixtures shared with the hook tests (a real daemon that runs hooks) and the dashboard tests
(the scripted scene on an in-process daemon)."""

from tests.bridges.conftest import deck  # noqa: F401  (fixtures, shared)
from tests.tui.conftest import runtime_dir, scene  # noqa: F401
