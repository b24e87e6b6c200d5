"""Questions that carry an action, as the dashboard shows them: a command as code, an edit
as a diff, a URL; the inbox names agent, session and tool; a long action is read before
it is approved."""

from __future__ import annotations

from core.model import Action, PromptState, Verdict
from tests.support import until

from tests.tui.conftest import SIZE, ask, deck, ready, row_of, rows
from tui.screenshots.scene import Scene
from tui.widgets.panes import DetailPane, Inbox

BASH = Action(agent="claude", tool="Bash", input={"command": "pytest -q tests/unit"},
              cwd="/repo", session="5f1c2e9a-77aa-4b1e")

EDIT = Action(
    agent="claude", tool="Edit", session="5f1c2e9a-77aa-4b1e", cwd="/repo",
    input={"file_path": "/repo/core/config.py",
           "old_string": "RETRIES = 3\nTIMEOUT = 10\n",
           "new_string": "RETRIES = 5\nTIMEOUT = 10\nBACKOFF = 2.0\n"},
)


def write_of(lines: int) -> Action:
    content = "\n".join(f"line {n}" for n in range(1, lines + 1))
    return Action(agent="claude", tool="Write", input={"file_path": "/repo/notes.md",
                                                       "content": content})


async def test_a_shell_command_shows_as_code_in_bar_detail_and_inbox(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await ask(app, pilot, scene, "Run the unit tests?", BASH)
        bar = str(app.query_one("#prompt-question").render())
        assert "Run the unit tests?" in bar
        assert "claude · Bash  in /repo" in bar and "$ pytest -q tests/unit" in bar
        assert "more lines" not in bar  # question, command: nothing to page through
        detail = app.query_one(DetailPane)
        await until(lambda: "$ pytest -q tests/unit" in str(detail.render()),
                    what="the command in the detail pane")
        inbox = app.query_one(Inbox)
        await until(lambda: any("claude · 5f1c2e9a… · Bash  pytest -q tests/unit"
                                in str(inbox.get_option(str(p)).prompt)
                                for p in (inbox._shown or [])),
                    what="the action in the inbox")


async def test_an_edit_shows_its_path_and_a_unified_diff(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await ask(app, pilot, scene, "Edit the config?", EDIT)
        detail = app.query_one(DetailPane)
        await until(lambda: "+BACKOFF = 2.0" in str(detail.render()), what="the diff")
        text = str(detail.render())
        for line in ("/repo/core/config.py", "@@ -1,2 +1,3 @@", "-RETRIES = 3",
                     "+RETRIES = 5", " TIMEOUT = 10"):
            assert line in text


async def test_a_long_write_is_read_to_the_end_before_a_approves(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        registry = scene.registry
        _, prompt_id = await ask(app, pilot, scene, "Write the notes?", write_of(12))
        bar = app.query_one("#prompt-question")
        assert "more lines not shown — e to expand" in str(bar.render())
        assert "+line 12" not in str(bar.render())
        await pilot.press("a")
        assert registry.get_prompt(prompt_id).state is PromptState.PENDING
        assert "more lines you have not seen" in app.notices[-1][1]
        while "end of the question" not in str(bar.render()):
            await pilot.press("e")
        assert "+line 12" in str(bar.render())
        await pilot.press("a")
        await until(lambda: registry.get_prompt(prompt_id).verdict is Verdict.APPROVED,
                    what="the approval once every line was seen")
        detail = app.query_one(DetailPane)
        await until(lambda: "+line 12" in str(detail.render()), what="the whole write")


async def test_a_fetch_shows_its_url(scene: Scene) -> None:
    app = deck(scene)
    fetch = Action(agent="claude", tool="WebFetch",
                   input={"url": "https://docs.example.org/api", "prompt": "list the endpoints"})
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await ask(app, pilot, scene, "Fetch the API docs?", fetch)
        bar = str(app.query_one("#prompt-question").render())
        assert "claude · WebFetch" in bar and "https://docs.example.org/api" in bar


async def test_the_tree_row_names_the_action_and_the_filter_finds_it(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        task_id, _ = await ask(app, pilot, scene, "Run the unit tests?", BASH)
        await until(lambda: "Run the unit" in row_of(app, task_id), what="the asking row")
        assert "Run the unit tests? · pytest -q tes…" in row_of(app, task_id)
        await pilot.press("/", *"tests/unit", "enter")
        await until(lambda: [r for r in rows(app) if r.strip()] == [row_of(app, task_id)],
                    what="the filter to keep only the asker")
