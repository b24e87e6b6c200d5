"""Built-in in-process agents (`demo`, `shell`) and loading of user agents by "module:attr"."""

from __future__ import annotations

import importlib
import inspect

from core.agents.demo import make_demo_agent
from core.agents.shell import make_shell_agent
from core.context import Agent
from core.errors import BadRequest

__all__ = ["Agent", "builtin_agents", "load_agent"]


def builtin_agents(*, seed: int = 0, speed: float = 1.0) -> dict[str, Agent]:
    """The agents every daemon offers, by the name tasks are submitted under.

    Args:
        seed: seeds the demo agent, so a run can be replayed.
        speed: how much faster than real time the demo agent thinks.
    """
    return {
        "demo": make_demo_agent(seed=seed, speed=speed),
        "shell": make_shell_agent(),
    }


def load_agent(spec: str) -> Agent:
    """Import a user's agent named "package.module:attr" (attr may be dotted).

    Raises:
        BadRequest: the spec is malformed, the module or attribute is missing, or the
            object is not an async callable.
    """
    module_name, sep, attr_path = spec.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not sep or not module_name or not attr_path:
        raise BadRequest(f"agent {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            raise BadRequest(f"agent {spec!r}: no module named {exc.name!r}") from None
        raise BadRequest(f"agent {spec!r}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        text = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise BadRequest(f"agent {spec!r}: importing {module_name!r} failed: {text}") from None
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise BadRequest(
                f"agent {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not _is_async_callable(target):
        raise BadRequest(
            f"agent {spec!r} is not an async function (found {type(target).__name__}; "
            "expected: async def agent(ctx) -> str)"
        )
    return target  # type: ignore[return-value]


def _is_async_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - an instance with async __call__
    return not inspect.isclass(obj) and call is not None and inspect.iscoroutinefunction(call)
