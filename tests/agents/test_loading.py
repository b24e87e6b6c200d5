"""Loading a user's agent by "module:attr", and the built-in agent set."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.agents import builtin_agents, load_agent
from core.errors import BadRequest
from core.model import TaskStatus
from core.registry import Registry
from tests.agents.conftest import ended

AGENT_MODULE = """
    class Greeter:
        async def __call__(self, ctx):
            return "hi from a callable"

    async def hello(ctx):
        ctx.add_tokens(10, 2)
        return f"hello {ctx.description}"

    def not_async(ctx):
        return "nope"

    greeter = Greeter()
    NUMBER = 42
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Importable modules `user_agents` (good) and `broken_agents` (raises on import)."""
    (tmp_path / "user_agents.py").write_text(textwrap.dedent(AGENT_MODULE))
    (tmp_path / "broken_agents.py").write_text("raise RuntimeError('missing API key')\n")
    (tmp_path / "needs_dep.py").write_text("import surely_not_installed_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("user_agents", "broken_agents", "needs_dep"):
        sys.modules.pop(name, None)


async def test_loaded_agent_runs_in_the_registry(user_modules: None, registry: Registry) -> None:
    registry.register_agent("hello", load_agent("user_agents:hello"))
    registry.register_agent("greeter", load_agent("user_agents:greeter"))

    hello = await ended(registry, registry.submit("hello", "world").id)
    greeter = await ended(registry, registry.submit("greeter", "x").id)

    assert (hello.status, hello.result, hello.tokens) == (TaskStatus.FINISHED, "hello world", 12)
    assert greeter.result == "hi from a callable"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("user_agents", "must look like 'package.module:function'"),
        ("user_agents:", "must look like"),
        (":hello", "must look like"),
        ("no_such_module_here:agent", "no module named 'no_such_module_here'"),
        ("user_agents.sub:agent", "no module named 'user_agents.sub'"),
        ("user_agents:missing", "has no attribute 'missing'"),
        ("user_agents:not_async", "is not an async function (found function;"),
        ("user_agents:NUMBER", "is not an async function (found int;"),
        ("user_agents:Greeter", "(found type;"),
        ("broken_agents:agent", "importing 'broken_agents' failed: RuntimeError: missing API key"),
        ("needs_dep:agent", "No module named 'surely_not_installed_dep'"),
    ],
)
def test_bad_specs_are_refused_with_one_clear_line(
    user_modules: None, spec: str, message: str
) -> None:
    with pytest.raises(BadRequest) as info:
        load_agent(spec)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert info.value.code == "BAD_REQUEST"


def test_builtin_agents_are_demo_and_shell() -> None:
    agents = builtin_agents(seed=1, speed=10)
    assert sorted(agents) == ["demo", "shell"]
    assert all(callable(agent) for agent in agents.values())
