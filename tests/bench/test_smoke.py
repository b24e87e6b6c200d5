"""Each benchmark runs end to end at the smallest sizes and reports well-formed figures.

No timing is asserted: these only prove the suite still works against the product.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import Config, Result
from bench.__main__ import BENCHMARKS, main


@pytest.fixture(autouse=True)
def private_temp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every file the benchmarks make (sockets, connection files, keys) goes under a test dir.

    The spawned processes inherit TMPDIR; the path stays short enough for unix sockets.
    """
    short = tmp_path_factory.mktemp("b")
    monkeypatch.setenv("TMPDIR", str(short))
    monkeypatch.setenv("TASKDECK_RUNTIME_DIR", str(short / "rt"))
    monkeypatch.setenv("TASKDECK_STATE_DIR", str(short / "st"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield short


def assert_well_formed(results: list[Result], bench: str) -> None:
    """Every result has a positive figure, baseline and ratio (memory may be 0), and survives JSON."""
    assert results, f"{bench} produced no figures"
    names = [r.name for r in results]
    assert len(names) == len(set(names)), f"duplicate figure names: {names}"
    for r in results:
        assert r.bench == bench
        assert r.unit and r.baseline_name
        # An RSS delta over a few dozen tiny tasks may round to no new page at all.
        least = 0 if r.unit == "B" else 1e-12
        for value in (r.figure, r.baseline, r.ratio):
            assert math.isfinite(value) and value >= least, f"{r.name}: {r.figure} / {r.baseline}"
        assert r.better in ("higher", "lower")
        if r.target is not None:
            assert r.met in (True, False)
        data = json.loads(json.dumps(r.to_json()))
        assert data["ratio"] == pytest.approx(r.figure / r.baseline if r.baseline else 0.0)


@pytest.mark.timeout(120)  # dozens of interpreters spawned: slow on a busy machine
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_and_reports_figures(name: str) -> None:
    if name == "web":
        from tui.screenshots.browser import chromium_path

        if chromium_path() is None and not os.environ.get("CI"):
            pytest.skip("no Chromium here (apt-get install chromium; .ci/run installs it)")
    module = importlib.import_module(BENCHMARKS[name])
    results = module.run(Config.tiny())
    assert_well_formed(results, name)


def test_entry_point_prints_table_and_writes_json(
    private_temp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = private_temp / "results.json"
    code = main(["--tiny", "--only", "late_join", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "time to consistent mirror" in printed and "ratio" in printed
    data = json.loads(out.read_text())
    assert data["mode"] == "tiny" and not data["failed"]
    assert data["machine"]["cores"] >= 1 and data["machine"]["libzmq"]
    assert {r["bench"] for r in data["results"]} == {"late_join"}
    assert all(r["ratio"] > 0 for r in data["results"])
