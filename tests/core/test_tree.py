"""The task tree and the task list: children, subtrees, token totals, window and filters."""

from __future__ import annotations

import pytest

from core.errors import BadRequest, TaskdeckError, UnknownAgent, UnknownTask
from core.model import TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, settle


@pytest.fixture
async def tree(registry: Registry, puppet: Puppet) -> dict[str, int]:
    """root -> (a -> a1, a2), b; plus a second root `other` run by agent `helper`."""
    registry.register_agent("helper", puppet)
    ids = {"root": registry.submit("puppet", "root").id}
    ids["a"] = registry.submit("puppet", "a", parent_id=ids["root"]).id
    ids["b"] = registry.submit("puppet", "b", parent_id=ids["root"]).id
    ids["a1"] = registry.submit("puppet", "a1", parent_id=ids["a"]).id
    ids["a2"] = registry.submit("puppet", "a2", parent_id=ids["a"]).id
    ids["other"] = registry.submit("helper", "other").id
    await settle(registry, puppet)
    return ids


async def test_children_are_direct_and_oldest_first(registry: Registry, tree: dict[str, int]) -> None:
    assert [t.id for t in registry.children(tree["root"])] == [tree["a"], tree["b"]]
    assert [t.id for t in registry.children(tree["a"])] == [tree["a1"], tree["a2"]]
    assert registry.children(tree["b"]) == []
    with pytest.raises(UnknownTask):
        registry.children(999)


async def test_subtree_lists_parents_before_children(registry: Registry, tree: dict[str, int]) -> None:
    ids = [t.id for t in registry.subtree(tree["root"])]
    assert sorted(ids) == sorted(tree[k] for k in ("root", "a", "b", "a1", "a2"))
    for task in registry.subtree(tree["root"]):
        if task.parent_id is not None:
            assert ids.index(task.parent_id) < ids.index(task.id)
    assert [t.id for t in registry.subtree(tree["b"])] == [tree["b"]]


async def test_subtree_tokens_sum_the_whole_subtree(registry: Registry, tree: dict[str, int]) -> None:
    registry.add_tokens(tree["root"], 1, 2)
    registry.add_tokens(tree["a"], 10, 20)
    registry.add_tokens(tree["a2"], 100, 200)  # still queued: it may count tokens too
    registry.add_tokens(tree["b"], 1000)
    registry.add_tokens(tree["other"], 5, 5)
    assert registry.subtree_tokens(tree["a"]) == 330
    assert registry.subtree_tokens(tree["root"]) == 1333
    assert registry.subtree_tokens(tree["a1"]) == 0
    assert registry.get(tree["root"]).tokens == 3


async def test_list_is_newest_first_with_a_window(registry: Registry, tree: dict[str, int]) -> None:
    everything = [t.id for t in registry.list(limit=None)]
    assert everything == sorted(tree.values(), reverse=True)
    assert [t.id for t in registry.list(limit=2)] == everything[:2]
    page2 = registry.list(limit=2, before=everything[1])
    assert [t.id for t in page2] == everything[2:4]
    assert registry.list(limit=0) == []
    assert [t.id for t in registry.list(before=tree["root"] + 1)] == [tree["root"]]


async def test_list_filters(registry: Registry, tree: dict[str, int]) -> None:
    assert [t.id for t in registry.list(agent="helper")] == [tree["other"]]
    assert [t.id for t in registry.list(parent_id=tree["a"])] == [tree["a2"], tree["a1"]]
    assert [t.id for t in registry.list(roots_only=True)] == [tree["other"], tree["root"]]
    running = {t.id for t in registry.list(status=TaskStatus.IN_PROGRESS)}
    assert running == {tree["root"], tree["a"]}
    assert {t.id for t in registry.list(status="queued")} == set(tree.values()) - running
    assert [t.id for t in registry.list(status="queued", parent_id=tree["root"], limit=1)] == [
        tree["b"]
    ]


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"status": "sleeping"}, BadRequest),
        ({"agent": "nobody"}, UnknownAgent),
        ({"parent_id": 999}, UnknownTask),
        ({"limit": -1}, BadRequest),
    ],
)
async def test_list_refuses_unknown_filter_values(
    registry: Registry, tree: dict[str, int], filters: dict[str, object], error: type[TaskdeckError]
) -> None:
    with pytest.raises(error):
        registry.list(**filters)  # type: ignore[arg-type]


async def test_list_by_an_unregistered_agent_name_follows_the_tasks_in_memory(
    registry: Registry,
) -> None:
    """External reporters name their own agent: it filters while its tasks are kept."""
    task = registry.open_external("report", agent="ci")
    assert [t.id for t in registry.list(agent="ci")] == [task.id]
    registry.finish(task.id, "ok")
    assert registry.evict([task.id]) == [task.id]
    with pytest.raises(UnknownAgent):
        registry.list(agent="ci")
