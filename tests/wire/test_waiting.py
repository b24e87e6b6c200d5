"""A blocking wait for an answer whose asker went away ends with its own error, known by
its own stable code, and leaves the question open for the caller to close."""

from __future__ import annotations

import pytest

from core.client import SyncClient
from core.errors import ERRORS_BY_CODE, AskerGone
from core.model import PromptState, Question
from tests.wire.conftest import ThreadedDaemon


def test_a_wait_whose_asker_went_away_ends_with_asker_gone(
        threaded_daemon: ThreadedDaemon) -> None:
    from core.client.waiting import ask_and_wait

    with SyncClient(threaded_daemon.runtime_dir, request_timeout=5.0) as client:
        task = client.open_task("run the migration")
        asked = []
        with pytest.raises(AskerGone, match="the agent went away") as ended:
            ask_and_wait(client, task.id, Question(text="run it?", timeout=30),
                         on_asked=asked.append, gone=lambda: "the agent went away")
        assert ended.value.code == "ASKER_GONE"
        assert ERRORS_BY_CODE["ASKER_GONE"] is AskerGone
        [prompt] = asked
        [still] = [q for q in client.get(task.id)[1] if q.id == prompt.id]
        assert still.state is PromptState.PENDING
