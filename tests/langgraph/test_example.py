"""The README's example graph, run as a user runs it, answered with `taskdeck answer`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Deck
from tests.langgraph.conftest import asking

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "langgraph_notes.py"
README = Path(__file__).parents[2] / "README.md"


def test_the_readme_quotes_the_example_as_it_is() -> None:
    section = README.read_text().split("### LangGraph graphs ask through taskdeck")[1]
    quoted = re.findall(r"```python\n(.*?)```", section.split("\n## ")[0], flags=re.DOTALL)
    assert len(quoted) == 2 and "def review" in quoted[1]
    assert quoted[1] in EXAMPLE.read_text()


def start(deck: Deck, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(EXAMPLE), str(path)], env=deck.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(deck: Deck, *args: str) -> None:
    result = deck.run("answer", *args)
    assert result.returncode == 0, result.stderr


def test_a_reply_redrafts_and_an_edit_writes_where_the_person_said(
        deck: Deck, tmp_path: Path) -> None:
    example = start(deck, tmp_path / "notes.txt")
    try:
        task = asking(deck, f"release notes -> {tmp_path / 'notes.txt'}")
        assert task.agent == "langgraph" and task.blocked_on is not None
        assert task.blocked_on.choices == ["approve", "edit", "deny"]
        assert task.blocked_on.summary == str(tmp_path / "notes.txt")
        answer(deck, str(task.id), "mention the new retry limit")
        # the draft comes back for review: a second question
        asking(deck, task.description, after=task.blocked_on.prompt_id)
        edited = {"path": str(tmp_path / "edited.txt"), "text": "Release 1.4, edited"}
        answer(deck, str(task.id), "edit", "--reason", json.dumps(edited))
        out, err = example.communicate(timeout=20)
    finally:
        example.kill()
    assert example.returncode == 0, err
    assert out.strip() == f"wrote {tmp_path / 'edited.txt'}"
    assert (tmp_path / "edited.txt").read_text() == "Release 1.4, edited\n"
    assert not (tmp_path / "notes.txt").exists()
    [done] = deck.tasks()
    assert done["status"] == "finished"
    assert json.loads(done["result"])["feedback"] == "mention the new retry limit"


def test_deny_skips_the_write_and_abort_ends_the_run(deck: Deck, tmp_path: Path) -> None:
    example = start(deck, tmp_path / "notes.txt")
    try:
        task = asking(deck, f"release notes -> {tmp_path / 'notes.txt'}")
        answer(deck, str(task.id), "deny", "--reason", "wait for the release")
        out, err = example.communicate(timeout=20)
    finally:
        example.kill()
    assert example.returncode == 0, err
    assert out.strip() == "skipped: wait for the release"

    aborted = start(deck, tmp_path / "other.txt")
    try:
        task = asking(deck, f"release notes -> {tmp_path / 'other.txt'}")
        assert deck.run("abort", str(task.id)).returncode == 0
        out, err = aborted.communicate(timeout=20)
    finally:
        aborted.kill()
    assert aborted.returncode == 2
    assert "aborted in taskdeck" in err and "Traceback" not in err
    assert not (tmp_path / "notes.txt").exists() and not (tmp_path / "other.txt").exists()
