"""taskdeck's errors; each carries the stable code it is known by on the wire."""

from __future__ import annotations


class TaskdeckError(Exception):
    """Base of every error taskdeck raises on purpose."""

    code = "INTERNAL"


class BadRequest(TaskdeckError):
    """The request is malformed or a value is out of range."""

    code = "BAD_REQUEST"


class UnknownTask(TaskdeckError):
    """No task has that id."""

    code = "UNKNOWN_TASK"


class UnknownPrompt(TaskdeckError):
    """No prompt has that id."""

    code = "UNKNOWN_PROMPT"


class UnknownAgent(BadRequest):
    """No agent is registered under that name."""

    code = "UNKNOWN_AGENT"


class NotPending(TaskdeckError):
    """The prompt no longer waits for an answer (cancelled or timed out)."""

    code = "NOT_PENDING"


class AlreadyAnswered(NotPending):
    """Somebody answered the prompt first."""

    code = "ALREADY_ANSWERED"


class InvalidState(TaskdeckError):
    """The task is not in a state that allows this."""

    code = "INVALID_STATE"


class VersionMismatch(TaskdeckError):
    """Client and daemon speak different protocol versions."""

    code = "VERSION_MISMATCH"


class Unauthorized(TaskdeckError):
    """The caller may not do this."""

    code = "UNAUTHORIZED"


class Unavailable(TaskdeckError):
    """The daemon did not answer in time."""

    code = "UNAVAILABLE"


class PromptCancelled(TaskdeckError):
    """Raised in an asking agent when its prompt was cancelled."""

    code = "NOT_PENDING"


class Unrecorded(TaskdeckError):
    """Raised in an asking agent when its prompt was answered but the journal could not
    record the answer: it is not delivered, so nothing was approved."""

    code = "JOURNAL_FAILED"


class PromptTimedOut(TaskdeckError):
    """Raised in an asking agent when nobody answered in time and there was no default."""

    code = "TIMEOUT"


class UnknownRule(TaskdeckError):
    """No approval rule has that id (it was never added, or was removed)."""

    code = "UNKNOWN_RULE"


class AskerGone(TaskdeckError):
    """Raised in a client waiting for an answer when the one the answer was for went away
    (its agent exited): nobody would read it. The question is left for the caller to close."""

    code = "ASKER_GONE"


ERRORS_BY_CODE: dict[str, type[TaskdeckError]] = {
    cls.code: cls
    for cls in (
        TaskdeckError,
        BadRequest,
        UnknownTask,
        UnknownPrompt,
        UnknownAgent,
        NotPending,
        AlreadyAnswered,
        InvalidState,
        VersionMismatch,
        Unauthorized,
        Unavailable,
        PromptTimedOut,
        UnknownRule,
        AskerGone,
    )
}
"""Wire code -> exception class, so clients raise the same types as the registry."""
