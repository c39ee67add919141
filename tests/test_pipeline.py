"""The main job end to end: every notebook on the smoke profile, in order, through the runner,
then every recorded metric compared with the stored smoke reference (results/smoke/metrics.json),
and the learning gate: SFT beats base on held-out personas."""

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
    # the learning gate: smoke trains on personas, and its SFT beats base on the held-out ones
    assert regression.learning_problem(measured, "smoke") is None


# the reference run's formulation (profile cpu): persona benchmark, pointwise prompts
PERSONA_POINTWISE = {
    "data.benchmarks": "sotu,aaac,personas",
    "data.train_benchmarks": "personas",
    "prompt.mode": "pointwise",
    "data.persona_words": "10",
}


@pytest.mark.slow
def test_tiny_run_trains_pointwise_on_personas_and_judges_every_benchmark(tmp_path):
    """The path of the cpu reference run, end to end on the tiny model: personas built beside sotu and
    aaac, trained on alone, both adapters recording the pointwise mode, every benchmark judged, and the
    reasoning scored against the personas' true operators in 05 and 07."""
    import pandas as pd

    run = tmp_path / "run"
    lines: list[str] = []
    results = run_notebooks("tiny", run, log=lines.append, settings=PERSONA_POINTWISE)
    progress = [line for line in lines if line.startswith("[")]  # "[k/7] name  ok  seconds"
    assert len(results) == len(progress) == len(discover(NOTEBOOKS_DIR))
    assert all(" ok " in line for line in progress)
    metrics = regression.collect(run)
    assert all(metrics["01_synthesize"][f"n_pairs/test_{b}"] > 0 for b in ("sotu", "aaac", "personas"))
    # only persona pairs are trained on, and the persona teacher is exact
    train = [json.loads(line) for line in (run / "data" / "pairs" / "train.jsonl").read_text().splitlines()]
    assert train and all(p["id"].startswith("train-personas-") for p in train)
    assert metrics["02_filter_audit"]["teacher_agreement/personas"] == 1.0
    for stage in ("sft", "rft"):
        info = json.loads((run / stage / "adapter" / "persrm_training.json").read_text())
        assert (info["mode"], info["stage"]) == ("pointwise", stage)
    table = pd.read_csv(run / "eval" / "accuracy_by_benchmark.csv")
    assert {"sotu", "aaac", "personas"} <= set(table.columns)
    assert {"rm-sft", "rm-rft"} <= set(table["judge"])
    for name in ("criteria_recall_rm_sft", "criteria_recall_rm_rft", "check_agreement_rm_rft"):
        assert 0.0 <= metrics["05_evaluate"][name] <= 1.0
    assert {"rft_criteria_recall_first", "rft_criteria_recall_last"} <= set(metrics["07_behavior_analysis"])
