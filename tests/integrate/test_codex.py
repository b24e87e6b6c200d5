"""Codex hook trust: our hashes equal Codex's, and the real Codex runs what integrate wrote."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path

import pytest

from core.cli import main
from core.integrate import codex_trust, plans
from core.integrate.codex_check import list_hooks
from core.integrate.command import HookOptions, is_ours
from tests.agent_binaries import CODEX, installed

# Hashes the pinned Codex (0.171.0) reported in `hooks/list` for these entries.
OBSERVED = [
    ("PreToolUse", "*", {"type": "command", "command": "/x/taskdeck hook codex", "timeout": 600},
     "sha256:1e008b47310a0f739a5f636ae9cdd4a6f858ca11ca55b57a144345c16e6d26fb"),
    ("SessionStart", None, {"type": "command", "command": "/x/taskdeck hook codex", "timeout": 10},
     "sha256:f0ebbbf495da5bab6eaf52b856b15fa5722b6619a7c8e3e37f7849df80ad90b4"),
    # Stop ignores its matcher; no timeout hashes as 600
    ("Stop", "*", {"type": "command", "command": "echo a"},
     "sha256:f9b7a328de9c5845f5eed806f12f8f5adeba50ba82617690fd3f8ededeb12f90"),
    ("Stop", None, {"type": "command", "command": "echo b", "statusMessage": "hi", "async": False},
     "sha256:c72b67baff2ded5aa5d7b13595a2b98a82816b75cbc507577d2017dfc5705151"),
    # UserPromptSubmit ignores its matcher too
    ("UserPromptSubmit", "*", {"type": "command", "command": "e", "timeout": 10},
     "sha256:e91f3707626cd8c70a57b9425b9bbfb45c91df0b7ed8dc6f0cfc92df7a2ce1f1"),
    # SessionEnd: the timeout is cut to 3 s (and 1 s when unset) before it is hashed
    ("SessionEnd", None, {"type": "command", "command": "a", "timeout": 10},
     "sha256:42a5307396a3311376788cd874aae704206cb585b4da5dbcc11a59a23e824111"),
    ("SessionEnd", None, {"type": "command", "command": "b", "timeout": 3},
     "sha256:a710376cd632fd4765ceb37250acbdb78cd4a232e0296b5b3c157f04a3eb628a"),
    ("SessionEnd", None, {"type": "command", "command": "d", "timeout": 2},
     "sha256:dc57f006719b9a810c732c45757788aeb27e8b0edeae3c911526faff5cab0f35"),
    ("SessionEnd", None, {"type": "command", "command": "c"},
     "sha256:795b45aba205ef760f15d04d0542dd18b59b1f17245cea155781ea8720b7e9c4"),
]


@pytest.mark.parametrize(("event", "matcher", "handler", "digest"), OBSERVED)
def test_hash_equals_the_one_codex_computed(event, matcher, handler, digest) -> None:
    assert codex_trust.trust_hash(event, matcher, handler) == digest


def test_the_hash_covers_command_timeout_and_matcher() -> None:
    event, matcher, handler, digest = OBSERVED[0]
    assert codex_trust.trust_hash(event, matcher, {**handler, "command": "/y/taskdeck hook codex"}) != digest
    assert codex_trust.trust_hash(event, matcher, {**handler, "timeout": 601}) != digest
    assert codex_trust.trust_hash(event, "Bash", handler) != digest


def test_the_key_names_hooks_json_in_the_resolved_codex_home(tmp_path: Path) -> None:
    """As Codex 0.171.0 keyed them: CODEX_HOME's link resolved, hooks.json's own link not."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dotfiles.json").write_text("{}")
    (tmp_path / "real" / "hooks.json").symlink_to(tmp_path / "dotfiles.json")
    key = codex_trust.hook_key(tmp_path / "link" / "hooks.json", "PermissionRequest", 2, 0)
    assert key == f"{tmp_path / 'real' / 'hooks.json'}:permission_request:2:0"


def test_config_keeps_the_users_text_and_only_our_entries_change() -> None:
    config = '# mine\nmodel = "o3"  # keep this\n\n[hooks.state."/h/hooks.json:stop:0:0"]\nenabled = false\n'
    trusted = {"/h/hooks.json:stop:0:0": "sha256:aa", "/h/hooks.json:pre_tool_use:0:0": "sha256:bb"}
    written = codex_trust.apply_trust(config, trusted)
    assert written.startswith('# mine\nmodel = "o3"  # keep this\n')
    state = tomllib.loads(written)["hooks"]["state"]
    assert state == {"/h/hooks.json:stop:0:0": {"enabled": False, "trusted_hash": "sha256:aa"},
                     "/h/hooks.json:pre_tool_use:0:0": {"trusted_hash": "sha256:bb"}}
    assert codex_trust.apply_trust(written, trusted) == written
    back = codex_trust.apply_trust(written, {}, set(trusted))
    assert tomllib.loads(back) == {"model": "o3", "hooks": {"state": {
        "/h/hooks.json:stop:0:0": {"enabled": False}}}}


@pytest.mark.parametrize("config", [
    '# only a comment\n',
    '[hooks]\n[[hooks.PreToolUse]]\nmatcher = "*"\nhooks = [{ type = "command", command = "audit" }]\n',
    'model = "o3"\n\n[hooks.state."/h/hooks.json:stop:0:0"]\nenabled = false\n',
])
def test_trust_goes_in_and_out_leaving_the_text_as_it_was(config: str) -> None:
    trusted = {"/h/hooks.json:pre_tool_use:1:0": "sha256:bb"}
    written = codex_trust.apply_trust(config, trusted)
    assert tomllib.loads(written)["hooks"]["state"]["/h/hooks.json:pre_tool_use:1:0"] == {
        "trusted_hash": "sha256:bb"}
    assert codex_trust.apply_trust(written, {}, set(trusted)) == config


@pytest.mark.parametrize("config", [
    'hooks = { state = { "k" = { trusted_hash = "x" } } }\n',
    'hooks = {}\n',
    'hooks.state."k".trusted_hash = "x"\nmodel = "m"\n',
])
def test_a_layout_tomlkit_would_edit_wrongly_is_refused(config: str) -> None:
    """tomlkit put `model` under the new table after dotted keys: checked, never written."""
    with pytest.raises(codex_trust.BadFile, match=r"^has `hooks` in a form taskdeck cannot edit"):
        codex_trust.apply_trust(config, {"/h/hooks.json:stop:0:0": "sha256:aa"})


# ------------------------------------------------------------------ the real Codex


def codex_home(tmp_path: Path) -> tuple[Path, Path]:
    """A CODEX_HOME with the user's own config and hook, and a project directory."""
    home, project = tmp_path / "codex", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text(
        '# my settings\nmodel = "fake-model"  # offline\nmodel_provider = "fake"\n\n'
        '[model_providers.fake]\nname = "fake"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'wire_api = "responses"\nenv_key = "FAKE_KEY"\n'
    )
    (home / "hooks.json").write_text(json.dumps(
        {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}]}}))
    return home, project


@pytest.mark.timeout(120)
def test_codex_reports_our_hooks_trusted_and_nothing_else(tmp_path: Path) -> None:
    codex = installed(CODEX)
    home, project = codex_home(tmp_path)
    assert main(["integrate", "codex", "--codex-home", str(home), "--gate", "Bash"]) == 0

    listed = list_hooks(codex, home, project)
    ours = [h for h in listed if is_ours({"type": "command", "command": h.command}, "codex")]
    events = {h.key.split(":")[-3] for h in ours}
    assert events == {"session_start", "user_prompt_submit", "pre_tool_use", "permission_request",
                      "post_tool_use", "stop", "session_end"}
    assert {h.trust for h in ours} == {"trusted"}
    [session_end] = json.loads((home / "hooks.json").read_text())["hooks"]["SessionEnd"]
    assert session_end["hooks"][0]["timeout"] == codex_trust.SESSION_END_TIMEOUT
    assert all(h.enabled for h in ours)
    user = [h for h in listed if h.command == "audit"]
    assert [h.trust for h in user] == ["untrusted"]  # never trusted on the user's behalf
    assert tomllib.loads((home / "config.toml").read_text())["model"] == "fake-model"

    # New options: new hashes, still trusted, no stale entries left behind.
    assert main(["integrate", "codex", "--codex-home", str(home), "--timeout", "100"]) == 0
    listed = list_hooks(codex, home, project)
    assert {h.trust for h in listed if h.command != "audit"} == {"trusted"}
    state = tomllib.loads((home / "config.toml").read_text())["hooks"]["state"]
    assert len(state) == 7


@pytest.mark.timeout(120)
def test_hooks_an_earlier_version_wrote_are_replaced_by_the_quick_entry(tmp_path: Path) -> None:
    """`python -m core.cli hook codex`, trusted: found, replaced in place, trusted anew."""
    import sys

    codex = installed(CODEX)
    home, project = codex_home(tmp_path)
    old = [sys.executable, "-m", "core.cli"]
    for change in plans.codex(home, HookOptions(), old):
        change.path.write_text(change.after)
    listed = list_hooks(codex, home, project)
    assert {h.trust for h in listed if "core.cli" in h.command} == {"trusted"}

    assert main(["integrate", "codex", "--codex-home", str(home)]) == 0
    ours = [h for h in list_hooks(codex, home, project) if h.command != "audit"]
    assert len(ours) == len(plans.CODEX_EVENTS)
    assert {h.trust for h in ours} == {"trusted"}
    quick = shlex.join([sys.executable, "-m", "core.entry"])
    assert {h.command.split(" hook ")[0] for h in ours} == {quick}
    assert len(tomllib.loads((home / "config.toml").read_text())["hooks"]["state"]) == len(ours)


@pytest.mark.timeout(120)
def test_removing_ours_moves_the_users_trust_with_their_hooks(tmp_path: Path) -> None:
    codex = installed(CODEX)
    home, project = codex_home(tmp_path)
    hooks_json = home / "hooks.json"
    (hooks_json).write_text("{}")
    assert main(["integrate", "codex", "--codex-home", str(home)]) == 0
    # The user adds a hook after ours and trusts it in Codex.
    data = json.loads(hooks_json.read_text())
    data["hooks"]["PreToolUse"].append({"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]})
    hooks_json.write_text(json.dumps(data))
    theirs = next(h for h in list_hooks(codex, home, project) if h.command == "audit")
    assert theirs.key.endswith(":pre_tool_use:1:0")
    with open(home / "config.toml", "a") as config:
        config.write(f'\n[hooks.state."{theirs.key}"]\ntrusted_hash = "{theirs.current_hash}"\n')

    assert main(["integrate", "codex", "--codex-home", str(home), "--remove"]) == 0
    listed = list_hooks(codex, home, project)
    assert [(h.command, h.key.split(":", 1)[1], h.trust) for h in listed] == [
        ("audit", "pre_tool_use:0:0", "trusted")]
    assert list(tomllib.loads((home / "config.toml").read_text())["hooks"]["state"]) == [
        str(hooks_json) + ":pre_tool_use:0:0"]


@pytest.mark.timeout(120)
def test_verify_asks_codex_and_names_the_step_left(tmp_path: Path, capsys) -> None:
    codex = str(installed(CODEX))
    home, _project = codex_home(tmp_path)
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", codex]) == 0
    assert capsys.readouterr().out.endswith(
        f"Codex ({codex}) lists taskdeck's 7 hooks as trusted\n")

    config = home / "config.toml"
    config.write_text(config.read_text().replace('trusted_hash = "sha256:', 'trusted_hash = "sha256:0', 1))
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", codex,
                 "--print"]) == 0  # --print only shows the repair
    assert '-trusted_hash = "sha256:0' in capsys.readouterr().out
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", codex]) == 0
    capsys.readouterr()

    hooks = json.loads((home / "hooks.json").read_text())
    hooks["hooks"]["Stop"][0]["hooks"][0]["timeout"] = 11  # changed by hand after trusting
    (home / "hooks.json").write_text(json.dumps(hooks))
    stop = next(h for h in list_hooks(codex, home, _project) if h.key.endswith(":stop:0:0"))
    assert stop.trust == "modified"
    # integrate puts our own entry back as written, trusted again
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", codex]) == 0
    assert capsys.readouterr().out.endswith("lists taskdeck's 7 hooks as trusted\n")


def test_a_switched_off_hook_is_the_step_left(tmp_path: Path, capsys) -> None:
    home, _project = codex_home(tmp_path)
    assert main(["integrate", "codex", "--codex-home", str(home)]) == 0
    key = codex_trust.hook_key(home / "hooks.json", "PermissionRequest", 0, 0)
    config = home / "config.toml"
    config.write_text(config.read_text().replace(f'[hooks.state."{key}"]\n',
                                                 f'[hooks.state."{key}"]\nenabled = false\n'))
    capsys.readouterr()
    assert main(["integrate", "codex", "--codex-home", str(home)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"already up to date: {home / 'hooks.json'}, {config}\n"
    assert captured.err == ("one step left: Codex has 1 of taskdeck's hooks switched off "
                            "(enabled = false in config.toml); switch them on in Codex's /hooks\n")
    assert "enabled = false" in config.read_text()


@pytest.mark.timeout(120)
def test_linked_codex_home_and_hooks_file_are_trusted_as_codex_keys_them(tmp_path: Path, capsys) -> None:
    codex = str(installed(CODEX))
    real, project = codex_home(tmp_path)
    dotfile = tmp_path / "dotfiles" / "codex-hooks.json"
    dotfile.parent.mkdir()
    (real / "hooks.json").rename(dotfile)
    (real / "hooks.json").symlink_to(dotfile)
    (tmp_path / "link").symlink_to(real)
    assert main(["integrate", "codex", "--codex-home", str(tmp_path / "link"), "--verify", codex]) == 0
    assert capsys.readouterr().out.endswith("lists taskdeck's 7 hooks as trusted\n")
    assert (real / "hooks.json").is_symlink() and "hook codex" in dotfile.read_text()


STUB = """#!{python}
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("method") == "hooks/list":
        hooks = [{{"key": key, "command": "x", "trustStatus": "modified", "currentHash": "sha256:0",
                  "enabled": True}} for key in {keys!r}]
        print(json.dumps({{"id": message["id"], "result": {{"data": [{{"hooks": hooks}}]}}}}), flush=True)
    elif "id" in message:
        print(json.dumps({{"id": message["id"], "result": {{}}}}), flush=True)
"""


def test_a_codex_that_disagrees_is_named_with_the_step_left(tmp_path: Path, capsys) -> None:
    """A Codex whose hashing moved on (a stand-in binary: the pinned one agrees with us)."""
    import sys

    home, _project = codex_home(tmp_path)
    assert main(["integrate", "codex", "--codex-home", str(home)]) == 0
    keys = list(tomllib.loads((home / "config.toml").read_text())["hooks"]["state"])[:2]
    stub = tmp_path / "codex-next"
    stub.write_text(STUB.format(python=sys.executable, keys=keys))
    stub.chmod(0o755)
    capsys.readouterr()
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", str(stub)]) == 1
    assert capsys.readouterr().err == (
        f"one step left: Codex ({stub}) does not trust 7 of taskdeck's 7 hooks (permission_request "
        "not listed, post_tool_use not listed, pre_tool_use modified, session_end not listed, "
        "session_start modified, stop not listed, user_prompt_submit not listed): run codex, "
        "open /hooks and trust them\n")
    assert main(["integrate", "codex", "--codex-home", str(home),
                 "--verify", str(tmp_path / "no-codex")]) == 2
    assert capsys.readouterr().err.startswith(
        f"taskdeck: could not ask Codex: cannot start {tmp_path / 'no-codex'}: ")
    assert main(["integrate", "codex", "--codex-home", str(home), "--verify", "false"]) == 2
    assert capsys.readouterr().err == "taskdeck: could not ask Codex: codex app-server ended (exit 1)\n"
