"""Text that reaches a terminal shows its control and bidi characters as escapes."""

from __future__ import annotations

import pytest

from core.text import one_line, printable, printable_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("make test", "make test"),
        ("a\rb", "a\\rb"),
        ("x\x1b[2Ky", "x\\x1b[2Ky"),
        ("rtl\u202eexe.txt", "rtl\\u202eexe.txt"),
        ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
        ("tab\there", "tab\\there"),
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_lines_keep_their_breaks_and_one_line_marks_the_rest() -> None:
    assert printable_lines("one\r\ntwo\x07") == "one\ntwo\\x07"
    assert one_line("first\nsecond") == "first …"
