"""Changes from the client, collected between two frames, and the event rate (no Textual).

The client hands over a batch per burst of events; drawing each batch would cost a
frame per batch under 1,000 events a second. Batches are folded together here and
drawn at most once per `FRAME`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.client import Changes
    from core.model import Prompt

FRAME = 1 / 30
"""Least seconds between two applications of changes to the screen (changes in between coalesce)."""

RATE_BUCKETS = 30
"""Seconds of event-rate history in the sparkline."""


@dataclass(frozen=True, slots=True)
class Frame:
    """What one frame draws: every change since the last one."""

    dirty: set[int]
    """Tasks created, changed or evicted."""
    opened: list[Prompt]
    """Questions that opened (bell and notice)."""
    resync: bool
    """The mirror was reloaded: redraw everything."""


class Frames:
    """Collects the client's batches until the next frame, and counts events per second."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        """The app's clock: event-rate seconds are its seconds."""
        self._dirty: set[int] = set()
        self._opened: list[Prompt] = []
        self._resync = False
        self._pending = False
        self._drawn_at = 0.0
        """`time.monotonic()` of the last frame taken."""
        self.seq: int | None = None
        """The registry seq the app has been told about."""
        self._rate: deque[tuple[int, int]] = deque(maxlen=RATE_BUCKETS + 2)

    def collect(
        self, changes: Changes, seq: int | None, *, started: bool, now: float
    ) -> float | None:
        """Fold a batch in.

        Args:
            seq: The mirror's seq after the batch (None: no mirror to count events by).
            started: The first snapshot is on screen (until then, it is drawn by itself).
            now: `time.monotonic()`.

        Returns:
            Seconds until the frame that draws it is due (0 or less: at once), or None
            when a frame is already due.
        """
        self._dirty |= changes.task_ids
        self._opened.extend(changes.opened)
        self._resync = self._resync or changes.resynced
        if seq is not None:
            if self.seq is not None and not changes.resynced:
                self._count(max(0, seq - self.seq))
            self.seq = seq
        if self._pending:
            return None
        self._pending = True
        # The first change after a quiet frame is drawn at once; changes that follow it
        # within a frame wait for the rest of that frame, together.
        return self._drawn_at + FRAME - now if started else FRAME

    def redraw_all(self) -> None:
        """Have the next frame draw everything (the first snapshot)."""
        self._resync = True

    def take(self, now: float) -> Frame:
        """Everything collected since the last frame, emptied; `now` is `time.monotonic()`."""
        self._pending = False
        self._drawn_at = now
        frame = Frame(self._dirty, self._opened, self._resync)
        self._dirty, self._opened, self._resync = set(), [], False
        return frame

    def _count(self, count: int) -> None:
        second = int(self._clock())
        if self._rate and self._rate[-1][0] == second:
            self._rate[-1] = (second, self._rate[-1][1] + count)
        else:
            self._rate.append((second, count))

    def rate(self) -> list[float]:
        """Events in each of the last `RATE_BUCKETS` complete seconds, oldest first.

        The second in progress is left out: it would change the sparkline on every frame
        (a repaint and a frame of its own), and always look like a dip.
        """
        now = int(self._clock())
        counts = dict(self._rate)
        return [float(counts.get(s, 0)) for s in range(now - RATE_BUCKETS, now)]
