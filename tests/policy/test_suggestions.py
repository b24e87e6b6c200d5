"""Claude Code's `permission_suggestions` reach the action, and the remember editor starts from
the first one that reads as a narrow rule."""

from __future__ import annotations

import json

import pytest

from core.bridges.claude import CLAUDE
from core.bridges.hook import parse, plan, suggested_rules
from core.model import Action
from core.policy.propose import propose

OBSERVED = [{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test *"}],
             "behavior": "allow", "destination": "localSettings"}]


def test_a_permission_request_carries_its_suggestions_on_the_action() -> None:
    raw = json.dumps({"hook_event_name": "PermissionRequest", "session_id": "S", "cwd": "/w",
                      "tool_name": "Bash", "tool_input": {"command": "npm test -- --ci"},
                      "permission_suggestions": OBSERVED}).encode()
    action = plan(parse(raw, CLAUDE), CLAUDE).ask
    assert action is not None and action.suggestions == ["Bash(npm test *)"]


@pytest.mark.parametrize(("given", "rules"), [
    (OBSERVED, ["Bash(npm test *)"]),
    ([{"type": "addRules", "rules": [{"toolName": "Read"}], "behavior": "allow"}], ["Read"]),
    ([{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "rm *"}],
       "behavior": "deny"}], []),
    ([{"type": "setMode", "mode": "acceptEdits"}], []),
    ({"not": "a list"}, []),
    (["text", 3, None, {"type": "addRules", "rules": "nope"}], []),
    (None, []),
])
def test_only_allow_rules_are_taken_and_any_other_shape_is_left_out(given, rules) -> None:
    assert suggested_rules(given) == rules


def test_a_hook_with_an_odd_suggestion_still_parses() -> None:
    raw = json.dumps({"hook_event_name": "PermissionRequest", "session_id": "S",
                      "tool_name": "Bash", "tool_input": {"command": "ls"},
                      "permission_suggestions": "odd"}).encode()
    assert plan(parse(raw, CLAUDE), CLAUDE).ask is not None


@pytest.mark.parametrize(("suggestions", "proposed"), [
    (["Bash(npm run test:*)"], "Bash(npm run test:*)"),
    (["Bash", "Bash(npm test *)"], "Bash(npm test *)"),  # a match-everything one is passed over
    (["Bash(npm test"], "Bash(npm run *)"),  # malformed: our own proposal
    ([], "Bash(npm run *)"),
])
def test_the_proposal_starts_from_the_agents_suggestion(suggestions, proposed) -> None:
    action = Action(agent="claude", tool="Bash", input={"command": "npm run test"},
                    suggestions=suggestions)
    assert propose(action) == proposed
