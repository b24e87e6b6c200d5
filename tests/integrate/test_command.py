"""`taskdeck integrate` on real files: print, write, backups, modes, twice, remove, bad files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

USER = {"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},
        "permissions": {"allow": ["Bash(npm test *)"]}}


def integrate(*args: str) -> int:
    return main(["integrate", *args])


def backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.bak"))


def ours(settings: Path) -> list[str]:
    data = json.loads(settings.read_text())
    return [h["command"] for groups in data.get("hooks", {}).values() for g in groups
            for h in g["hooks"] if " hook claude" in h["command"]]


def test_print_shows_a_diff_and_writes_nothing(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(USER, indent=2) + "\n")
    before = settings.read_bytes()
    assert integrate("claude", "--settings", str(settings), "--print") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {settings}\n+++ {settings}\n")
    assert '+            "command": "' in out and " hook claude --timeout 590" in out
    assert settings.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [settings]


def test_print_of_a_new_file_creates_nothing(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "new" / "settings.json"
    assert integrate("claude", "--settings", str(settings), "--print") == 0
    assert capsys.readouterr().out.startswith(f"--- /dev/null\n+++ {settings}\n")
    assert not settings.parent.exists()


def test_write_keeps_the_users_settings_backs_up_and_keeps_the_mode(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "settings.json"
    original = json.dumps(USER, indent=4) + "\n"
    settings.write_text(original)
    settings.chmod(0o640)
    assert integrate("claude", "--settings", str(settings)) == 0
    out = capsys.readouterr().out
    [backup] = backups(tmp_path)
    assert f"wrote {settings} (previous version kept as {backup})" in out
    assert backup.read_text() == original
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    data = json.loads(settings.read_text())
    assert list(data) == ["model", "hooks", "permissions"]
    assert data["hooks"]["Stop"][0] == USER["hooks"]["Stop"][0]
    assert data["permissions"] == USER["permissions"]
    assert settings.read_text().startswith('{\n    "model"')  # the file's own indent
    assert len(ours(settings)) == 11
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_twice_changes_nothing(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(USER))
    assert integrate("claude", "--settings", str(settings), "--gate", "Bash") == 0
    written, stamp = settings.read_bytes(), settings.stat().st_mtime_ns
    capsys.readouterr()
    assert integrate("claude", "--settings", str(settings), "--gate", "Bash") == 0
    assert capsys.readouterr().out == f"already up to date: {settings}\n"
    assert settings.read_bytes() == written and settings.stat().st_mtime_ns == stamp
    assert len(backups(tmp_path)) == 1
    assert integrate("claude", "--settings", str(settings), "--gate", "Bash", "--print") == 0
    assert capsys.readouterr().out == "already up to date: nothing to change\n"


def test_new_options_replace_ours_in_place(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    assert integrate("claude", "--settings", str(settings)) == 0
    assert integrate("claude", "--settings", str(settings), "--gate", "Bash", "--timeout", "60",
                     "--idle", "5") == 0
    commands = set(ours(settings))
    assert len(commands) == 1
    assert commands.pop().endswith(" hook claude --gate Bash --timeout 60 --idle 5")
    data = json.loads(settings.read_text())
    assert data["hooks"]["PreToolUse"][0]["hooks"][0]["timeout"] == 70
    assert len(ours(settings)) == 11


def test_a_runtime_dir_goes_into_the_hook(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    assert main(["integrate", "claude", "--settings", str(settings),
                 "--runtime-dir", str(tmp_path / "run")]) == 0
    [command] = set(ours(settings))
    assert command.endswith(f" hook claude --runtime-dir {tmp_path / 'run'} --timeout 590")


def test_remove_restores_the_users_settings(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(USER))
    assert integrate("claude", "--settings", str(settings)) == 0
    assert integrate("claude", "--settings", str(settings), "--remove") == 0
    assert json.loads(settings.read_text()) == USER
    assert len(backups(tmp_path)) == 2
    capsys.readouterr()
    assert integrate("claude", "--settings", str(settings), "--remove") == 0
    assert capsys.readouterr().out == f"no taskdeck hooks in {settings}\n"


def test_a_new_file_is_private(tmp_path: Path) -> None:
    settings = tmp_path / "deep" / "settings.json"
    assert integrate("claude", "--settings", str(settings)) == 0
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert backups(settings.parent) == []


def test_a_symlinked_settings_file_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    assert integrate("claude", "--settings", str(link)) == 0
    assert link.is_symlink()
    assert len(ours(real)) == 11


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{\"hooks\": ", "not valid JSON (line 1: Expecting value)"),
        ("[1, 2]", "holds JSON list, not an object"),
        ('{"hooks": {"Stop": "taskdeck"}}', "`hooks.Stop` is a string, not a list"),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
)
def test_a_bad_file_is_one_line_and_untouched(tmp_path: Path, capsys, content, message) -> None:
    settings = tmp_path / "settings.json"
    settings.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = settings.read_bytes()
    for extra in ((), ("--remove",), ("--print",)):
        assert integrate("claude", "--settings", str(settings), *extra) == 2
        err = capsys.readouterr().err
        assert err == f"taskdeck: {settings}: {message}: nothing changed\n"
    assert settings.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [settings]


def test_a_directory_is_refused(tmp_path: Path, capsys) -> None:
    assert integrate("claude", "--settings", str(tmp_path)) == 2
    assert capsys.readouterr().err == f"taskdeck: {tmp_path}: not a regular file: nothing changed\n"


def test_a_bad_codex_config_changes_neither_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.toml").write_text("model = \n")
    assert integrate("codex", "--codex-home", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taskdeck: {tmp_path / 'config.toml'}: is not valid TOML (")
    assert err.endswith("): nothing changed\n") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_locations_of_the_other_agent_are_refused(tmp_path: Path, capsys) -> None:
    assert integrate("codex", "--settings", str(tmp_path / "s.json")) == 2
    assert capsys.readouterr().err == "taskdeck integrate: --settings is not an option for codex\n"
    assert integrate("claude", "--codex-home", str(tmp_path)) == 2
    assert list(tmp_path.iterdir()) == []


def test_project_and_user_locations(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    assert integrate("claude", "--project", str(tmp_path / "repo")) == 0
    assert len(ours(tmp_path / "repo" / ".claude" / "settings.local.json")) == 11
    assert integrate("claude") == 0
    assert len(ours(tmp_path / "home" / ".claude" / "settings.json")) == 11
    assert integrate("codex") == 0
    assert (tmp_path / "home" / ".codex" / "hooks.json").exists()
    assert (tmp_path / "home" / ".codex" / "config.toml").exists()


def test_the_written_command_runs_from_anywhere(tmp_path: Path) -> None:
    """The command in the file starts this taskdeck with no PATH and another cwd."""
    settings = tmp_path / "settings.json"
    script = Path(sys.executable).with_name("taskdeck")
    result = subprocess.run([str(script), "integrate", "claude", "--settings", str(settings)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    [command] = set(ours(settings))
    assert command.startswith(str(script) + " hook claude")
    run = subprocess.run(command.replace(" hook claude", " hook --help"), shell=True, cwd="/",
                         env={k: v for k, v in os.environ.items() if k != "PATH"},
                         capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0 and "--gate" in run.stdout, run.stderr


def test_hooks_switched_off_in_claude_code_are_the_step_left(tmp_path: Path, capsys) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text('{"disableAllHooks": true}')
    assert integrate("claude", "--settings", str(settings)) == 1
    assert capsys.readouterr().err == (
        f'one step left: {settings} sets "disableAllHooks": true, so Claude Code runs none of '
        "its hooks; remove that line to let taskdeck answer\n")
    assert len(ours(settings)) == 11
    assert json.loads(settings.read_text())["disableAllHooks"] is True



def test_a_config_that_cannot_be_written_says_what_was(tmp_path: Path, capsys, monkeypatch) -> None:
    """A full disk at the second file (a fault injected into the rename: as root no mode stops us)."""
    import errno

    from core.integrate import files

    real = os.replace

    def full(src, dst):
        if Path(dst).name == "config.toml":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", full)
    (tmp_path / "config.toml").write_text('model = "o3"\n')
    assert integrate("codex", "--codex-home", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == (f"taskdeck: {tmp_path / 'config.toml'}: cannot write it (No space left on "
                   f"device), after writing {tmp_path / 'hooks.json'}: Codex skips the hooks it "
                   "does not trust; run this again once the file is writable\n")
    assert (tmp_path / "config.toml").read_text() == 'model = "o3"\n'
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[0] == "config.toml" and left[2] == "hooks.json" and len(left) == 3  # no temp
    assert left[1].startswith("config.toml.taskdeck-")  # the backup made before trying
