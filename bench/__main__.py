"""`python -m bench [--quick] [--json FILE] [--only NAME ...]`: run the suite, print the table."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import Config, Result, machine, markdown_table, table

BENCHMARKS: dict[str, str] = {
    "registry": "bench.registry_scale",
    "pipeline": "bench.pipeline",
    "roundtrip": "bench.roundtrip",
    "late_join": "bench.late_join",
    "dashboard": "bench.dashboard",
    "hook_cost": "bench.hook_cost",
    "policy": "bench.policy",
}
"""Benchmark name -> module with `run(config) -> list[Result]`, in the order they run."""


def run_all(config: Config, names: Sequence[str]) -> tuple[list[Result], dict[str, str]]:
    """Run the named benchmarks; a benchmark that cannot run is reported, not fatal.

    Returns:
        The results, and the error line of each benchmark that failed, by name.
    """
    results: list[Result] = []
    failed: dict[str, str] = {}
    for name in names:
        started = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
            got = module.run(config)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] {name} failed: {failed[name]}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            continue
        results.extend(got)
        print(f"[bench] {name} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return results, failed


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print the table; exit 1 when a benchmark failed to run."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="taskdeck benchmarks: each figure next to a baseline measured in the same run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes (< 2 min on 2 cores)")
    size.add_argument(
        "--tiny", action="store_true", help="smoke sizes: checks the suite runs; figures mean little"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    config = {"tiny": Config.tiny, "quick": Config.quick_mode, "full": Config.full}[mode]()
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    info = machine()
    print(
        f"taskdeck bench ({mode}): {info['cores']} cores, "
        f"{info['cpu']}, Python {info['python']}, pyzmq {info['pyzmq']}, "
        f"libzmq {info['libzmq']}, msgspec {info['msgspec']}, textual {info['textual']}"
    )
    started = time.perf_counter()
    results, failed = run_all(config, names)
    elapsed = time.perf_counter() - started
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown_table(results))
    for name, error in failed.items():
        print(f"{name}: could not run: {error}")
    print(f"\n{len(results)} figures in {elapsed:.1f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "mode": mode,
            "machine": info,
            "elapsed_s": elapsed,
            "results": [r.to_json() for r in results],
            "failed": failed,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
