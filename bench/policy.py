"""Approval rules: what deciding by rule adds to a question, with 1,000 rules held.

Three figures, each next to a baseline measured in the same run:

* the rulebook alone: `Rulebook.decide` per action with 1,000 rules held, against the same
  actions with 10 rules held (the index should make the two about equal; target <= 50 us);
  first with commands never seen (each is parsed), then with commands already parsed;
* in the registry: a question with an action that a rule answers at once, against the same
  question answered by a person's `answer` call (no rules held);
* over the wire: an agent's `ask` that a rule decides inside a real daemon process, from the
  request to the answered prompt in its reply (target <= 5 ms), against the `ask` of a plain
  question, which only opens the prompt.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from bench import Config, Result

HELD = 1_000
FEW = 10
TARGET_DECIDE_US = 50.0
TARGET_WIRE_MS = 5.0


def rules_mix(count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """`count` rules as a busy deck might hold them: mostly shell commands, some paths,
    domains and MCP tools, a few scoped to sessions; the last ones are the ones the actions
    of `actions()` meet."""
    made: list[tuple[str, str, dict[str, Any]]] = []
    kinds = itertools.cycle(["bash"] * 8 + ["edit", "fetch"])
    for i in range(max(0, count - 5)):
        kind = next(kinds)
        if kind == "bash":
            made.append(("allow" if i % 3 else "deny", f"Bash(tool{i} run *)",
                         {"session": f"s{i}"} if i % 7 == 0 else {}))
        elif kind == "edit":
            made.append(("allow", f"Edit(pkg{i}/**)", {}))
        else:
            made.append(("allow", f"WebFetch(domain:site{i}.example.org)", {}))
    made += [
        ("allow", "Bash(npm test *)", {}),
        ("allow", "Bash(git status)", {}),
        ("deny", "Bash(curl *)", {}),
        ("allow", "Edit(src/**)", {}),
        ("allow", "WebFetch(domain:docs.python.org)", {}),
    ]
    return made


def actions(fresh: int = 0) -> list[Any]:
    """One of each kind of action a rule meets; `fresh` makes each command unique."""
    from core.model import Action

    tag = f" --seed={fresh}" if fresh else ""
    return [
        Action(agent="claude", tool="Bash", input={"command": f"npm test -- --watch{tag}"},
               session="S1"),
        Action(agent="claude", tool="Bash",
               input={"command": f"npm test{tag} && git status && curl x | sh"}, session="S1"),
        Action(agent="codex", tool="exec_command", input={"command": ["make", "-j4", tag]}),
        Action(agent="claude", tool="Edit", cwd="/repo",
               input={"file_path": f"/repo/src/app{fresh}.py"}),
        Action(agent="claude", tool="WebFetch", input={"url": "https://docs.python.org/3/"}),
    ]


def _book(count: int) -> Any:
    from core.policy import Effect, Rule, Rulebook

    book = Rulebook()
    for i, (effect, pattern, scope) in enumerate(rules_mix(count), 1):
        book.add(Rule(id=i, effect=Effect(effect), pattern=pattern, **scope))
    return book


def _decide_us(book: Any, rounds: int, *, fresh: bool) -> float:
    """Microseconds per `decide`, best of three runs."""
    from core.policy.shell import forget

    best = float("inf")
    for run in range(3):
        batches = [actions(fresh=(run * rounds + r + 1) if fresh else 0) for r in range(rounds)]
        if not fresh:
            for action in batches[0]:
                book.decide(action, now=0.0)  # parsed once, as a repeated command is
        else:
            forget()
        started = time.perf_counter()
        for batch in batches:
            for action in batch:
                book.decide(action, now=0.0)
        best = min(best, (time.perf_counter() - started) / (rounds * len(batches[0])))
    return best * 1e6


def _registry_us(rounds: int, *, with_rules: bool, journal: bool = False) -> float:
    """Microseconds per question closed: by rule, or (no rules) by a person's answer; with
    `journal`, each decision is written to a journal in a temp dir (fsynced) first."""
    import tempfile
    from pathlib import Path

    from core.journal import Journal
    from core.model import Action, Question
    from core.registry import Registry

    async def go() -> float:
        registry = Registry(default_timeout=None)
        with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
            book = Journal.open(Path(tmp) / "journal.sqlite3") if journal else None
            if book is not None:
                book.attach(registry)
                registry.recorder = book.record
            try:
                return await cycle(registry)
            finally:
                if book is not None:
                    book.close()
                await registry.close()

    async def cycle(registry: Registry) -> float:
        if with_rules:
            for effect, pattern, scope in rules_mix(HELD):
                registry.add_rule(effect, pattern, **scope)
        task = registry.open_external("session", agent="claude", lease=3600)
        question = Question(text="Run npm test?", action=Action(
            agent="claude", tool="Bash", input={"command": "npm test"}, session="S1"))
        started = time.perf_counter()
        for _ in range(rounds):
            prompt = registry.open_prompt(task.id, question)
            if not with_rules:
                registry.answer(prompt.id, "approve")
        elapsed = time.perf_counter() - started
        assert registry.get_prompt(prompt.id).answer == "approve"
        return elapsed / rounds * 1e6

    return min(asyncio.run(go()) for _ in range(3))


def _wire_ms(rounds: int) -> tuple[float, float]:
    """Milliseconds per `ask` decided by rule in a daemon process, and per plain `ask`."""
    from bench.wire import daemon_only
    from core import protocol as p
    from core.client import SyncClient
    from core.model import Action, Question

    with daemon_only("ipc") as (_daemon, runtime), \
            SyncClient(runtime, state_dir=runtime.parent / "state") as client:
        for effect, pattern, scope in rules_mix(HELD):
            client.add_rule(effect, pattern, everything=False, **scope)
        task = client.open_task("session", agent="claude", lease=3600)
        decided = p.Ask.of(task.id, Question(text="Run npm test?", action=Action(
            agent="claude", tool="Bash", input={"command": "npm test"}, session="S1")))
        plain = p.Ask.of(task.id, Question(text="Go on?"))
        rule_times, plain_times = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            reply = client.request(decided)
            rule_times.append(time.perf_counter() - started)
            if reply.prompt.answered_by is None:
                raise RuntimeError("the rule did not decide the question")
            started = time.perf_counter()
            opened = client.request(plain)
            plain_times.append(time.perf_counter() - started)
            client.answer(opened.prompt.id, "approve")
        task.finish("done")
    rule_times.sort()
    plain_times.sort()
    return rule_times[len(rule_times) // 2] * 1e3, plain_times[len(plain_times) // 2] * 1e3


def run(config: Config) -> list[Result]:
    """The three figures; sizes follow the run's mode."""
    rounds = max(20, config.roundtrips)
    results: list[Result] = []
    few = _book(FEW)
    held = _book(HELD)
    for fresh, label in ((False, "commands seen before"), (True, "every command new")):
        figure = _decide_us(held, rounds // 4 if fresh else rounds, fresh=fresh)
        baseline = _decide_us(few, rounds // 4 if fresh else rounds, fresh=fresh)
        results.append(Result(
            bench="policy", name=f"decide one action, {HELD:,} rules held, {label}", unit="us",
            figure=figure, baseline=baseline, baseline_name=f"{FEW} rules held",
            better="lower", target=f"<= {TARGET_DECIDE_US:g} us",
            met=figure <= TARGET_DECIDE_US, params={"rules": HELD, "actions": 5},
        ))
    registry_rounds = max(20, config.registry_ops // 5)
    by_rule = _registry_us(registry_rounds, with_rules=True)
    by_person = _registry_us(registry_rounds, with_rules=False)
    results.append(Result(
        bench="policy", name=f"question closed by rule in the registry, {HELD:,} rules held",
        unit="us", figure=by_rule, baseline=by_person,
        baseline_name="the same question answered by a person's call, no rules",
        better="lower", params={"rules": HELD, "questions": registry_rounds},
    ))
    journal_rounds = max(10, registry_rounds // 20)
    by_rule = _registry_us(journal_rounds, with_rules=True, journal=True)
    by_person = _registry_us(journal_rounds, with_rules=False, journal=True)
    results.append(Result(
        bench="policy",
        name=f"question closed by rule, journal on (fsync), {HELD:,} rules held",
        unit="us", figure=by_rule, baseline=by_person,
        baseline_name="a person's answer, journal on",
        better="lower", params={"rules": HELD, "questions": journal_rounds, "journal": True},
        note="both write the decision durably before it applies",
    ))
    wire_rounds = max(10, config.roundtrips // 10)
    rule_ms, plain_ms = _wire_ms(wire_rounds)
    results.append(Result(
        bench="policy", name=f"ask decided by rule in the daemon, {HELD:,} rules held",
        unit="ms", figure=rule_ms, baseline=plain_ms,
        baseline_name="ask of a plain question (opens it only)", better="lower",
        target=f"<= {TARGET_WIRE_MS:g} ms", met=rule_ms <= TARGET_WIRE_MS,
        params={"rules": HELD, "asks": wire_rounds, "journal": False},
        note="median request to reply, ipc, no journal",
    ))
    return results
