"""The end-to-end deck and place, for the suite that runs the real Claude Code."""

from tests.e2e.conftest import deck, place  # noqa: F401  (the fixtures, shared)
