"""The main job end to end: every notebook on the smoke profile, in order, through the runner,
then every recorded metric compared with the stored smoke reference (results/smoke/metrics.json)."""

from __future__ import annotations

import json

import pytest

from persrm_lib.core.paths import NOTEBOOKS_DIR
from persrm_lib.run import regression
from persrm_lib.run.runner import discover, run_notebooks


@pytest.mark.slow
def test_smoke_run_reproduces_the_stored_metrics(tmp_path):
    lines: list[str] = []
    results = run_notebooks("smoke", tmp_path / "run", log=lines.append)
    assert [r.name for r in results] == [p.name for p in discover(NOTEBOOKS_DIR)]
    assert len(lines) == len(results) + 1 and all(" ok " in line for line in lines[1:])
    measured = regression.collect(tmp_path / "run")
    assert set(measured) == {p.stem for p in discover(NOTEBOOKS_DIR)}  # every notebook recorded metrics
    stored = json.loads(regression.stored_path("smoke").read_text())
    rows = regression.compare(stored, measured, regression.load_tolerances())
    moved = [r for r in rows if r.status in ("moved", "missing")]
    assert not moved, regression.format_table(rows)
