"""The `taskdeck` program: `taskdeck hook ...` starts lean, everything else is core.cli.

Agents run `taskdeck hook AGENT` for every tool call; it must not wait for the imports
of commands it does not run (see core/bridges/command.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `taskdeck` command."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["hook"]:
        from core.bridges.command import main as hook

        return hook(given[1:])
    from core.cli import main as cli

    return cli(given)


if __name__ == "__main__":
    sys.exit(main())
