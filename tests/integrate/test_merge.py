"""Merging taskdeck's hooks into settings: the pure rules, as tables of cases."""

from __future__ import annotations

import json

import pytest

from core.integrate.command import DEFAULT_WAIT, HookOptions, entry_point, hook_command, is_ours
from core.integrate.files import BadFile
from core.integrate.hooks import Wanted, check, install, remove
from core.integrate.plans import CLAUDE_EVENTS, CODEX_EVENTS, CODEX_TIMEOUT_CAPS, wanted

BASE = ["/opt/td/bin/taskdeck"]
OURS = "/opt/td/bin/taskdeck hook claude --timeout 590"
OLD = "taskdeck hook claude --gate Bash"
"""Ours as the README once told people to write it by hand."""


def mine(data):
    return is_ours(data, "claude")


def handler(command: str, timeout: int | None = None) -> dict:
    found = {"type": "command", "command": command}
    if timeout is not None:
        found["timeout"] = timeout
    return found


WANT = {
    "PreToolUse": Wanted("*", handler(OURS, 10)),
    "Stop": Wanted(None, handler(OURS, 10)),
}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (OURS, True),
        (OLD, True),
        ("'/home/me/my venv/bin/taskdeck' hook claude", True),
        ("/usr/bin/python3 -m core.entry hook claude --idle 5", True),
        ("/usr/bin/python3 -m core.cli hook claude --idle 5", True),  # as once written
        ("/usr/bin/python3 -m core.entry hook codex", False),
        ("/usr/bin/python3 -m core.server hook claude", False),
        ("/opt/td/bin/taskdeck hook codex", False),  # another agent's
        ("taskdeck watch", False),
        ("prettier --write", False),
        ("echo taskdeck hook claude", False),
        ("taskdeck-fork hook claude", False),
        ("'unbalanced", False),
    ],
)
def test_ours_is_recognised_by_the_command(command: str, expected: bool) -> None:
    assert is_ours(handler(command), "claude") is expected


def test_a_handler_that_is_not_a_command_is_never_ours() -> None:
    assert not is_ours({"type": "http", "command": OURS}, "claude")
    assert not is_ours({"type": "command", "command": ["taskdeck", "hook", "claude"]}, "claude")


def test_the_command_is_absolute_and_shell_quoted(tmp_path) -> None:
    script = tmp_path / "my bin" / "taskdeck"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    command = hook_command("claude", HookOptions(gates=("Bash", "Web Fetch")), 590,
                           entry_point(str(script)))
    assert command == (f"'{script}' hook claude --gate Bash --gate 'Web Fetch' --timeout 590")
    assert is_ours(handler(command), "claude")


def test_a_linked_script_is_named_by_its_link(tmp_path, monkeypatch) -> None:
    """~/.local/bin/taskdeck -> a versioned path: the link survives an upgrade, the target not."""
    real = tmp_path / "Cellar" / "0.1.0" / "bin" / "taskdeck"
    real.parent.mkdir(parents=True)
    real.write_text("#!/bin/sh\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "taskdeck").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    assert entry_point("bin/taskdeck") == [str(tmp_path / "bin" / "taskdeck")]


def test_without_a_taskdeck_script_the_interpreter_runs_the_quick_entry() -> None:
    assert entry_point("/src/core/cli.py", "/venv/bin/python") == [
        "/venv/bin/python", "-m", "core.entry"]


def test_a_command_written_the_old_way_is_replaced_by_the_quick_one() -> None:
    old = "/venv/bin/python -m core.cli hook claude --timeout 590"
    quick = entry_point("/x/cli.py", "/venv/bin/python")
    new = hook_command("claude", HookOptions(), DEFAULT_WAIT, quick)
    assert new == "/venv/bin/python -m core.entry hook claude --timeout 590"
    data = {"hooks": {"Stop": [{"hooks": [handler("say done"), handler(old, 10)]}]}}
    merged = install(data, {"Stop": Wanted(None, handler(new, 10))}, mine)
    assert merged == {"hooks": {"Stop": [{"hooks": [handler("say done"), handler(new, 10)]}]}}


@pytest.mark.parametrize("agent", ["claude"])
def test_the_default_wait_is_the_bridges_own(agent: str) -> None:
    from core.cli import _parser

    assert _parser().parse_args(["hook", agent]).timeout == DEFAULT_WAIT


def test_decision_hooks_outlast_the_wait_for_a_person() -> None:
    default = wanted("claude", CLAUDE_EVENTS, HookOptions(), BASE)
    assert set(default) == set(CLAUDE_EVENTS)
    assert default["PermissionRequest"].handler["timeout"] == 600
    assert default["PreToolUse"].handler["timeout"] == 10  # no gate: it only observes
    assert {w.handler["timeout"] for e, w in default.items() if e != "PermissionRequest"} == {10}
    gated = wanted("claude", CLAUDE_EVENTS, HookOptions(gates=("Bash",), timeout=120), BASE)
    assert gated["PreToolUse"].handler["timeout"] == 130
    assert gated["PermissionRequest"].handler["timeout"] == 130
    assert "--timeout 120" in gated["Stop"].handler["command"]
    assert [e for e, w in default.items() if w.matcher == "*"] == [
        "PreToolUse", "PermissionRequest", "PostToolUse"]
    assert set(wanted("codex", CODEX_EVENTS, HookOptions(), BASE)) == set(CODEX_EVENTS)


def test_an_agents_cap_on_a_timeout_is_written_as_the_timeout() -> None:
    """Codex cuts a SessionEnd hook's timeout to 3 s and trusts by the cut value."""
    written = wanted("codex", CODEX_EVENTS, HookOptions(timeout=1), BASE, CODEX_TIMEOUT_CAPS)
    assert {e: w.handler["timeout"] for e, w in written.items()} == {
        "SessionStart": 10, "UserPromptSubmit": 10, "PreToolUse": 10, "PermissionRequest": 11,
        "PostToolUse": 10, "Stop": 10, "SessionEnd": 3}
    assert written["SessionEnd"].matcher is None  # every reason
    capped = wanted("codex", ("PermissionRequest",), HookOptions(timeout=1), BASE,
                    {"PermissionRequest": 5})
    assert capped["PermissionRequest"].handler["timeout"] == 5


MERGES = [
    pytest.param({}, {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]}],
                                "Stop": [{"hooks": [handler(OURS, 10)]}]}}, id="empty"),
    pytest.param(
        {"model": "opus", "hooks": {"Stop": [{"hooks": [handler("say done")]}]}, "z": 1},
        {"model": "opus", "hooks": {"Stop": [{"hooks": [handler("say done")]},
                                             {"hooks": [handler(OURS, 10)]}],
                                    "PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]}]},
         "z": 1},
        id="user hooks kept first, ours appended, key order kept"),
    pytest.param(
        {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [handler(OLD, 600)]},
                                  {"matcher": "Edit", "hooks": [handler("lint")]}],
                   "Stop": [{"hooks": [handler(OLD)]}]}},
        {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]},
                                  {"matcher": "Edit", "hooks": [handler("lint")]}],
                   "Stop": [{"hooks": [handler(OURS, 10)]}]}},
        id="ours with old options replaced in place"),
    pytest.param(
        {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [handler("audit"), handler(OLD)]}],
                   "SessionEnd": [{"hooks": [handler(OLD)]}, {"hooks": [handler("bye")]}]}},
        {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [handler("audit"), handler(OURS, 10)]}],
                   "SessionEnd": [{"hooks": [handler("bye")]}],
                   "Stop": [{"hooks": [handler(OURS, 10)]}]}},
        id="in a user's group ours is replaced there; an event no longer wanted loses ours"),
    pytest.param(
        {"hooks": {"Stop": [{"hooks": [handler(OLD), handler(OURS)]}, {"hooks": [handler(OLD)]}]}},
        {"hooks": {"Stop": [{"hooks": [handler(OURS, 10)]}],
                   "PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]}]}},
        id="copies of ours collapse to one"),
    pytest.param(
        {"hooks": {"Notification": []}},
        {"hooks": {"Notification": [], "PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]}],
                   "Stop": [{"hooks": [handler(OURS, 10)]}]}},
        id="the user's empty list left alone"),
]


@pytest.mark.parametrize(("before", "after"), MERGES)
def test_install(before: dict, after: dict) -> None:
    merged = install(before, WANT, mine)
    assert merged == after
    assert json.dumps(merged) == json.dumps(after)  # key order too
    assert install(merged, WANT, mine) == merged  # twice changes nothing


REMOVALS = [
    pytest.param({}, {}, id="nothing"),
    pytest.param({"hooks": {}}, {"hooks": {}}, id="the user's empty hooks kept"),
    pytest.param(
        {"a": 1, "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [handler(OURS, 10)]}],
                           "Stop": [{"hooks": [handler(OURS, 10)]}]}},
        {"a": 1}, id="all ours: hooks goes"),
    pytest.param(
        {"hooks": {"Stop": [{"hooks": [handler("say done")]}, {"hooks": [handler(OURS, 10)]}],
                   "PreToolUse": [{"matcher": "Bash", "hooks": [handler("audit"), handler(OLD)]}],
                   "PostToolUse": [], "SessionEnd": [{"hooks": [handler(OLD)]}]}},
        {"hooks": {"Stop": [{"hooks": [handler("say done")]}],
                   "PreToolUse": [{"matcher": "Bash", "hooks": [handler("audit")]}],
                   "PostToolUse": []}},
        id="exactly ours out, the user's kept"),
]


@pytest.mark.parametrize(("before", "after"), REMOVALS)
def test_remove(before: dict, after: dict) -> None:
    assert remove(before, mine) == after


def test_remove_undoes_install() -> None:
    for case in MERGES:
        before = case.values[0]
        assert remove(install(before, WANT, mine), mine) == remove(before, mine)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hooks": []}, "`hooks` is a list, not an object"),
        ({"hooks": "taskdeck"}, "`hooks` is a string, not an object"),
        ({"hooks": {"Stop": {}}}, "`hooks.Stop` is an object, not a list"),
        ({"hooks": {"Stop": [3]}}, "`hooks.Stop[0]` is a number, not an object"),
        ({"hooks": {"Stop": [{"hooks": None}]}}, "`hooks.Stop[0].hooks` is null, not a list"),
    ],
)
def test_wrong_types_are_refused_by_name(data: dict, message: str) -> None:
    with pytest.raises(BadFile, match=f"^settings.json: {message}$".replace("[", r"\[").replace("]", r"\]")):
        check(data, "settings.json")
