"""The real agent binaries the end-to-end tests drive, installed once into a cache.

Claude Code and Codex come from the npm registry as native binaries (through an optional
dependency). Versions are pinned here and in the README; the cache lives in the checkout
(`.cache/agents`, ignored by git) unless TASKDECK_TEST_CACHE names another directory, so
a second run installs nothing. An install that fails fails the test that needed it: the
end-to-end tests never skip quietly.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.197", "claude")
CODEX = ("@openai/codex", "0.171.0", "codex")

INSTALL_SECONDS = 600


def cache_dir() -> Path:
    """Where installed agents are kept between runs."""
    given = os.environ.get("TASKDECK_TEST_CACHE")
    root = Path(given) if given else Path(__file__).resolve().parent.parent / ".cache"
    return root / "agents"


def installed(package: tuple[str, str, str]) -> Path:
    """The path of the package's binary, installing the pinned version first if needed.

    One install at a time per package (a file lock), so parallel test processes share it.
    """
    name, version, binary = package
    prefix = cache_dir() / f"{name.replace('/', '+')}@{version}"
    path = prefix / "node_modules" / ".bin" / binary
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _works(path):
            npm = shutil.which("npm")
            if npm is None:
                raise AssertionError("npm is not installed: the end-to-end tests need it")
            result = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                 "--loglevel=error", f"{name}@{version}"],
                capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False,
            )
            if result.returncode != 0 or not _works(path):
                raise AssertionError(
                    f"could not install {name}@{version}: {result.stderr.strip()[-2000:]}"
                )
    return path


def _works(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, timeout=60,
                                check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
