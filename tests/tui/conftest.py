"""Fixtures for the dashboard tests: the real app over a real in-process daemon and client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot

from core.model import Action, Prompt, PromptState, Question, Task
from tests.support import until
from tui.app import DeckApp, make_app
from tui.screenshots.scene import Scene
from tui.widgets.panes import DetailPane
from tui.widgets.task_tree import TaskTree

SIZE = (130, 36)
"""Terminal size of every dashboard test and snapshot."""


@pytest.fixture
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh runtime dir with a path short enough for unix sockets."""
    return tmp_path_factory.mktemp("rt") / "run"


@pytest.fixture
def scene(runtime_dir: Path) -> Scene:
    """The scripted task tree (13 tasks, 3 questions) with a fake clock."""
    return Scene(runtime_dir)


def deck(scene: Scene) -> DeckApp:
    """The dashboard on the scene's daemon, with the scene's clock and no cursor blink."""
    return make_app(connect=scene.connect, clock=scene.clock, blink=False)


@asynccontextmanager
async def dashboard(scene: Scene, size: tuple[int, int] = SIZE
                    ) -> AsyncIterator[tuple[DeckApp, Pilot]]:
    """The dashboard on the scene's daemon in a terminal of `size`, synced: where a test starts."""
    app = deck(scene)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        yield app, pilot


async def ready(app: DeckApp, pilot: Pilot) -> None:
    """Wait until the first snapshot is drawn and the detail pane has its history."""
    await until(lambda: app.ready or app.failure, what="the dashboard to sync")
    assert app.failure is None, app.failure
    await settle(app, pilot)


async def settle(app: DeckApp, pilot: Pilot) -> None:
    """Wait until the detail pane holds the highlighted task's fetched history."""
    tree = app.query_one(TaskTree)
    detail = app.query_one(DetailPane)
    await until(lambda: tree.cursor_id is None or detail.fetched_for == tree.cursor_id,
                what="the detail pane to load")
    await pilot.pause()


def rows(app: DeckApp) -> list[str]:
    """The tree's lines as the user sees them (only those on screen)."""
    tree = app.query_one(TaskTree)
    return [tree.render_line(y).text.rstrip() for y in range(tree.scrollable_content_region.height)]


def row_of(app: DeckApp, task_id: int) -> str:
    """The visible line of one task (fails if it has none on screen)."""
    for line in rows(app):
        if f" #{task_id} " in line:
            return line
    raise AssertionError(f"no row for task {task_id} in:\n" + "\n".join(rows(app)))


def pending_of(scene: Scene, description: str) -> Prompt:
    """The pending prompt of a scene task."""
    assert scene.registry is not None
    task: Task = scene.registry.get(scene.ids[description])
    assert task.blocked_on is not None, f"{description} is not asking"
    return scene.registry.get_prompt(task.blocked_on.prompt_id)


async def move_to(app: DeckApp, pilot: Pilot, task_id: int) -> None:
    """Put the cursor on a task with j/k, as a user would."""
    tree = app.query_one(TaskTree)
    target = app.view.index[task_id]
    while app.view.index.get(tree.cursor_id or -1) != target:
        here = app.view.index.get(tree.cursor_id or -1, 0)
        await pilot.press("j" if here < target else "k")
    await settle(app, pilot)


NAMED_KEYS = {"/": "slash", " ": "space", "?": "question_mark", "-": "minus", "#": "number_sign"}
"""Key names of the characters the tests type (letters, digits and these)."""


async def burst(app: DeckApp, pilot: Pilot, *keys: str) -> None:
    """Deliver keys all at once, as a terminal hands over a paste or `tmux send-keys`.

    `pilot.press` waits for the app to go idle after every key; a person on a busy
    machine gets no such pause, so these keys are all queued before the first is read.
    """
    for key in keys:
        if len(key) == 1:
            event = events.Key(NAMED_KEYS.get(key, key), key)
        else:
            event = events.Key(key, "\r" if key == "enter" else None)
        app.post_message(event)
    await pilot.pause()
    await pilot.pause()


async def type_keys(app: DeckApp, pilot: Pilot, keys: tuple[str, ...], *, paced: bool) -> None:
    """Keys as `pilot.press(*keys)` sends them (a pause after each), or in one burst."""
    if paced:
        await pilot.press(*keys)
    else:
        await burst(app, pilot, *keys)


async def answered(scene: Scene, prompt: Prompt) -> Prompt:
    """The prompt once the daemon's registry holds its answer."""
    registry = scene.registry
    assert registry is not None
    await until(lambda: registry.get_prompt(prompt.id).state is PromptState.ANSWERED,
                what=f"an answer to prompt {prompt.id}")
    return registry.get_prompt(prompt.id)


async def ask(app: DeckApp, pilot: Pilot, scene: Scene, question: str,
              action: Action | None = None, *, description: str = "claude session",
              agent: str = "claude") -> tuple[int, int]:
    """A new external task asking a question (leave for the action, if any), highlighted:
    (task id, prompt id)."""
    assert scene.registry is not None
    task = scene.registry.open_external(description, agent=agent)
    prompt = scene.registry.open_prompt(task.id, Question(text=question, action=action))
    await until(lambda: task.id in app.view.index, what="the asking row")
    await move_to(app, pilot, task.id)
    return task.id, prompt.id
