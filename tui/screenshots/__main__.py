"""Regenerate screenshots/*.svg (and .png when rsvg-convert is installed) from the real dashboard.

Run `python -m tui.screenshots [OUT_DIR]`. Each shot starts the scripted scene (the
demo's agents and tasks) on a real in-process daemon, opens the dashboard on it through
the client library, presses keys like a user, and saves what the terminal shows.

PNGs need `rsvg-convert` (Debian: `apt-get install librsvg2-bin`) and a monospace font
known to fontconfig (Debian: `fonts-dejavu-core`; `fc-match monospace` names the one used).
The SVGs name the web font "Fira Code", which is rarely installed: a converter falling
back to a proportional font draws jagged columns, so the PNG is made from a copy that
names the installed monospace font instead (and keeps the spaces that start a run of
cells, which rsvg-convert would drop). Look at the PNGs after making them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tui.app import DeckApp, make_app
from tui.screenshots import claude
from tui.screenshots.scene import REPRODUCE, SCENE, Scene, wait_for
from tui.widgets.panes import DetailPane
from tui.widgets.task_tree import TaskTree

SIZE = (140, 40)
"""Terminal size of the screenshots."""


@dataclass(frozen=True)
class Shot:
    """One screenshot: a file name, the keys pressed, and what it shows."""

    name: str
    keys: tuple[str, ...]
    caption: str
    claude: bool = False
    """Add a Claude Code session asking permission, through the real `taskdeck hook claude`."""


SHOTS: tuple[Shot, ...] = (
    Shot("main", ("b",), "The live tree with three questions waiting; the highlighted one "
         "shows its answer keys below the tree."),
    Shot("answer", ("b", "r", *"only the tokenizer tests"),
         "Answering inline: `r` opens a reply box in place; Enter sends, Esc cancels."),
    Shot("abort", ("j", "j", "j", "j", "x"),
         "Abort asks first and says how many live tasks will stop; `y` confirms."),
    Shot("help", ("question_mark",), "`?` lists every key."),
    Shot("claude", ("b", "b"), "A Claude Code session asks to run a command: the "
         "command in code style, agent · session · tool on the inbox line.", claude=True),
)


async def _settled(app: DeckApp) -> None:
    await wait_for(lambda: app.ready or app.failure is not None)
    if app.failure is not None:
        raise SystemExit(f"screenshots: the dashboard could not start: {app.failure}")
    tree = app.query_one(TaskTree)
    detail = app.query_one(DetailPane)
    await wait_for(lambda: tree.cursor_id is None or detail.fetched_for == tree.cursor_id)


async def _activity(scene: Scene, app: DeckApp, seconds: int = 30) -> None:
    """Some token traffic over the last fake half-minute, so the rate sparkline has a shape."""
    registry = scene.registry
    assert registry is not None
    busy = [scene.ids["Refactor auth middleware to async"], scene.ids[REPRODUCE]]
    for second in range(seconds):
        scene.clock.advance(1)
        for n in range(4 + (second * 7) % 13):
            registry.add_tokens(busy[n % 2], 40, 12)
        await wait_for(lambda: app.seen_seq == registry.seq)
    scene.clock.advance(1)


async def shoot(shot: Shot, out: Path, runtime_root: Path) -> Path:
    """Take one screenshot; returns the SVG's path."""
    scene = Scene(runtime_root / shot.name, steps=claude.STEPS if shot.claude else SCENE)
    app = make_app(connect=scene.connect, clock=scene.clock, blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await _settled(app)
        waiting = await claude.ask(scene) if shot.claude else None
        try:
            await _activity(scene, app)
            await pilot.pause()
            if shot.keys:
                await pilot.press(*shot.keys)
            await _settled(app)
            await pilot.pause()
            app.query_one(TaskTree).refresh_visible()
            await pilot.pause()
            svg = app.export_screenshot(title="taskdeck")
        finally:
            if waiting is not None:
                await claude.done(waiting)
    path = out / f"{shot.name}.svg"
    path.write_text(svg, encoding="utf-8")
    return path


FALLBACK_FONT = "DejaVu Sans Mono"
"""The monospace font used when fontconfig cannot be asked."""


def monospace_font() -> str:
    """The family fontconfig picks for "monospace" on this machine."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return FALLBACK_FONT
    done = subprocess.run([fc_match, "-f", "%{family[0]}", "monospace"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() or FALLBACK_FONT


def to_png(svg: Path) -> Path | None:
    """Convert with rsvg-convert in an installed monospace font; None if it is missing."""
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        return None
    png = svg.with_suffix(".png")
    text = svg.read_text(encoding="utf-8").replace("Fira Code", monospace_font())
    # Each run of cells is a <text> placed by x; without this, rsvg-convert drops a
    # run's leading (non-breaking) spaces and the words of a row run together.
    text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
    with tempfile.TemporaryDirectory(prefix="tdpng") as tmp:
        mono = Path(tmp) / svg.name
        mono.write_text(text, encoding="utf-8")
        subprocess.run([rsvg, "-w", "1600", "-o", str(png), str(mono)], check=True)
    return png


async def main_async(out: Path, only: list[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="tdshot") as tmp:
        for shot in SHOTS:
            if only and shot.name not in only:
                continue
            svg = await shoot(shot, out, Path(tmp))
            made.append(svg)
            png = to_png(svg)
            if png is not None:
                made.append(png)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshots", description=__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=Path("screenshots"),
                        help="where to write the files (default: screenshots/)")
    parser.add_argument("--only", action="append", choices=[s.name for s in SHOTS],
                        metavar="NAME", help="take only this shot (repeatable)")
    args = parser.parse_args(argv)
    made = asyncio.run(main_async(args.out, args.only))
    for path in made:
        print(path)
    if not any(p.suffix == ".png" for p in made):
        print("(no PNGs: install rsvg-convert, e.g. apt-get install librsvg2-bin)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
