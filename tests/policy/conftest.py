"""The real daemon with hooks (`tests/bridges`), for rules acting on Claude Code's questions."""

from tests.bridges.conftest import deck  # noqa: F401  (the fixture, shared)
