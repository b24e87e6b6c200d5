"""The rule commands and results on the wire: round trips, refusals, and the service path."""

from __future__ import annotations

import msgspec
import pytest

from core import protocol as p
from core.model import Action
from core.policy import Effect, Rule, Ruling
from core.registry import Registry
from core.service import CommandService

ACTION = Action(agent="claude", tool="Bash", input={"command": "npm test"}, session="S1")
RULE = Rule(id=3, effect=Effect.ALLOW, pattern="Bash(npm test *)", session="S1",
            added_by="cli:ann@box", added_at=1.5, hits=2, last_used=2.5)


@pytest.mark.parametrize("body", [
    p.AddRule(effect=Effect.DENY, pattern="Bash(rm *)", agent="claude", task_id=4,
              expires=60.0, everything=False, by="me"),
    p.RemoveRule(rule_id=3, by="me"),
    p.ListRules(),
    p.TestRules(action=ACTION, task_id=4),
], ids=lambda b: type(b).__name__)
def test_rule_commands_round_trip(body: p.Command) -> None:
    request = p.Request(id="r-1", version=p.PROTOCOL_VERSION, body=body)
    assert p.decode_request(p.encode(request)) == request


@pytest.mark.parametrize("result", [
    p.RuleResult(rule=RULE),
    p.RulesResult(rules=[RULE], now=3.0),
    p.RulingResult(ruling=Ruling(effect=Effect.ALLOW, rules=[3], reason="rule 3 allows it")),
    p.RulingResult(ruling=Ruling(effect=None, reason="no rule matches")),
], ids=lambda r: type(r).__name__)
def test_rule_results_round_trip(result: p.Result) -> None:
    reply = p.Reply(id="r-1", ok=True, result=result)
    assert p.REPLY_DECODER.decode(p.encode(reply)) == reply


def _send(service: CommandService, body: dict, request_id: str = "r") -> p.Reply:
    raw = msgspec.msgpack.encode({"id": request_id, "version": 1, "body": body,
                                  "origin": {"user": "ann", "host": "box", "client": "cli"}})
    return p.REPLY_DECODER.decode(service.handle([raw]).reply)


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"op": "rule_add", "effect": "maybe", "pattern": "Bash(ls)"}, "BAD_REQUEST",
     "Invalid enum value 'maybe'"),
    ({"op": "rule_add", "effect": "allow", "pattern": "Bash(ls"}, "BAD_REQUEST",
     "missing the closing ')'"),
    ({"op": "rule_add", "effect": "allow", "pattern": "*"}, "BAD_REQUEST", "--everything"),
    ({"op": "rule_add", "effect": "allow", "pattern": "Bash(ls)", "expires": 0}, "BAD_REQUEST",
     "Expected `float` > 0.0"),
    ({"op": "rule_add", "effect": "allow", "pattern": "Bash(ls)", "task_id": 5},
     "UNKNOWN_TASK", "no task 5"),
    ({"op": "rule_rm", "rule_id": 5}, "UNKNOWN_RULE", "no rule 5"),
    ({"op": "rule_test", "action": {"agent": "claude"}}, "BAD_REQUEST",
     "missing required field `tool`"),
])
async def test_bad_rule_requests_are_refused_and_change_nothing(body, code, says) -> None:
    registry = Registry()
    service = CommandService(registry)
    try:
        reply = _send(service, body)
        assert not reply.ok and reply.error is not None
        assert reply.error.code == code and says in reply.error.message
        assert "\n" not in reply.error.message
        assert registry.list_rules() == []
    finally:
        await registry.close()


async def test_the_service_adds_tests_and_removes_as_the_sender() -> None:
    registry = Registry()
    service = CommandService(registry)
    try:
        added = _send(service, {"op": "rule_add", "effect": "allow",
                                "pattern": "Bash(npm test:*)", "session": "S1"}, "a")
        assert added.ok and isinstance(added.result, p.RuleResult)
        assert added.result.rule.pattern == "Bash(npm test:*)"
        assert added.result.rule.added_by == "cli:ann@box"
        again = _send(service, {"op": "rule_add", "effect": "allow", "pattern": "Bash(x)"}, "a")
        assert again == added  # a retried request is not applied twice
        tested = _send(service, {"op": "rule_test", "action": msgspec.to_builtins(ACTION)})
        assert isinstance(tested.result, p.RulingResult)
        assert tested.result.ruling.effect is Effect.ALLOW
        listed = _send(service, {"op": "rules"})
        assert isinstance(listed.result, p.RulesResult) and len(listed.result.rules) == 1
        removed = _send(service, {"op": "rule_rm", "rule_id": 1}, "b")
        assert isinstance(removed.result, p.RuleResult)
        assert removed.result.rule.removed_at is not None
        assert registry.list_rules() == []
    finally:
        await registry.close()
