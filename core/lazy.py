"""Package attributes imported on first use (PEP 562), so a one-shot command loads only
the submodules it touches: a hook, started for every tool call of an agent, pays for
neither asyncio nor the shell parser."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A `__getattr__` for `package` that imports each name of `homes` (name -> submodule)
    on first use and keeps it on the package."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
