"""A LangGraph graph that asks through taskdeck before it writes a file.

With a daemon running (`taskdeck serve`, or `taskdeck demo` and its runtime dir in
TASKDECK_RUNTIME_DIR), run `python docs/examples/langgraph_notes.py notes.txt` and answer
in the dashboard (or with `taskdeck answer`): approve writes the draft, edit changes the
path or text first, a written reply sends the draft back with your note, deny skips it.

Where the side effect goes: a node runs again from its start when the graph resumes, so
everything before `interrupt()` in `review` runs twice and must change nothing. The write
has a node of its own, which runs once, after the answer.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from core.adapters.langgraph import RunAborted, run_graph


class Notes(TypedDict, total=False):
    path: str
    text: str
    feedback: str
    decision: str
    outcome: str


def draft(state: Notes) -> Notes:
    text = "Release 1.4: faster sync, fewer retries."
    if state.get("feedback"):
        text += f" (revised: {state['feedback']})"
    return {"text": text}


def review(state: Notes) -> Notes:
    # Runs again from here on resume: read, build the request, ask; no side effects.
    answer = interrupt({
        "action_request": {"action": "write_file",
                           "args": {"path": state["path"], "text": state["text"]}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True,
                   "allow_ignore": True},
        "description": f"Write the release notes to {state['path']}?",
    })
    if answer["type"] == "accept":
        return {"decision": "write"}
    if answer["type"] == "edit":
        edited = answer["args"]["args"]
        return {"decision": "write", "path": str(edited.get("path", state["path"])),
                "text": str(edited.get("text", state["text"]))}
    if answer["type"] == "response":
        return {"decision": "redraft", "feedback": answer["args"]}
    return {"decision": "skip", "outcome": f"skipped: {answer['args'] or 'no reason given'}"}


def write(state: Notes) -> Notes:
    # The side effect has a node of its own: it runs once, after the answer.
    Path(state["path"]).write_text(state["text"] + "\n")
    return {"outcome": f"wrote {state['path']}"}


def build(checkpointer: InMemorySaver) -> object:
    graph = StateGraph(Notes)
    graph.add_node("draft", draft)
    graph.add_node("review", review)
    graph.add_node("write", write)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")
    graph.add_conditional_edges("review", lambda state: state["decision"],
                                {"write": "write", "redraft": "draft", "skip": END})
    graph.add_edge("write", END)
    return graph.compile(checkpointer=checkpointer, name="release-notes")


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "notes.txt"
    config = {"configurable": {"thread_id": f"notes-{uuid.uuid4().hex[:8]}"}}
    try:
        state = run_graph(build(InMemorySaver()), {"path": path}, config,
                          description=f"release notes -> {path}")
    except RunAborted as exc:
        print(exc, file=sys.stderr)
        return 2
    print(state["outcome"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
