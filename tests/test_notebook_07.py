"""Notebook 07_behavior_analysis end to end on a hand-written run folder (notebook 04 need not exist):
RFT completions and SFT traces whose behaviour counts and criteria are known, written in the stage
owners' formats, executed with papermill; the recorded metrics are checked against values worked
out by hand below."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from behavior_fixtures import eval_record, pair, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.jsonl import write_jsonl_atomic
from persrm_lib.core.output_format import render_output
from persrm_lib.core.paths import NOTEBOOKS_DIR, REPO_ROOT
from persrm_lib.evaluate.records import write_eval_completions
from persrm_lib.run.runner import execute_notebook
from persrm_lib.teachers.traces import make_trace

NOTEBOOK = NOTEBOOKS_DIR / "07_behavior_analysis.ipynb"


def completion(criteria: str, evaluation: str, scores: tuple[float, float]) -> dict[str, str]:
    return {"completion": render_output(criteria, evaluation, scores)}


# rule-based counts (verification, backtracking, subgoal setting, backward chaining) in comments
COMPLETIONS = [
    # step 0: no behaviour; criteria as in SFT; both correct
    {
        "step": 0,
        "pair_id": "p1",
        "label": "a",
        **completion("sentence rhythm, vocabulary, tone", "A uses short sentences like the exemplar.", (7, 3)),
    },
    {
        "step": 0,
        "pair_id": "p2",
        "label": "b",
        **completion("vocabulary, sentence rhythm", "B is closer in tone.", (4, 6)),
    },
    # step 1: (1, 1, 3, 0) -- two numbered criteria + "First,"; correct
    {
        "step": 1,
        "pair_id": "p1",
        "label": "a",
        **completion(
            "1. Sentence rhythm\n2. Punctuation",
            "First, compare rhythm. Wait, A is off. Let me check again: indeed A matches.",
            (7, 2),
        ),
    },
    # step 1: format violation, raw text counted: (0, 1, 0, 1)
    {
        "step": 1,
        "pair_id": "p3",
        "label": "b",
        "completion": "Wait, maybe B. If B were written by the author, we would expect dashes.",
    },
    # step 2: (1, 0, 0, 1), new criterion "dash use", first criterion changed (SFT p2 starts with vocabulary); correct
    {
        "step": 2,
        "pair_id": "p2",
        "label": "b",
        **completion(
            "dash use, sentence rhythm",
            "If B were written by the author, we would expect dashes. Indeed, B has them.",
            (3, 8),
        ),
    },
    # step 2: (0, 1, 1, 0), new criterion "irony", first changed (modal SFT first: sentence rhythm); wrong
    {
        "step": 2,
        "pair_id": "p4",
        "label": "a",
        **completion("irony; tone", "Actually, B is drier. Step 1: compare irony.", (2, 7)),
    },
]
SFT_TRACES = [  # (pair id, label, completion); written as full traces by the teachers' writer
    ("p1", "a", completion("sentence rhythm, vocabulary, tone", "A fits.", (8, 2))["completion"]),
    ("p2", "b", completion("vocabulary, punctuation, sentence rhythm", "B fits.", (2, 8))["completion"]),
    ("p3", "b", completion("tone, sentence rhythm", "B fits.", (3, 7))["completion"]),
]
BASE_EVAL = [  # (pair id, label, completion) of the base model; written by the evaluation's writer
    ("p1", "a", "First, I will compare rhythm. A is closer."),
    ("p2", "b", "B."),
]

# worked out by hand from the tables above
EXPECTED = {
    "n_completions": 6,
    "n_steps": 3,
    "n_sft_traces": 3,
    "format_ok_share": 5 / 6,
    "sft_vocabulary_size": 4,  # sentence rhythm, vocabulary, tone, punctuation
    "new_criteria_count": 2,  # dash use, irony
    "share_with_new_criteria": 2 / 5,
    "accuracy_with_new_criteria": 0.5,
    "accuracy_without_new_criteria": 1.0,
    "share_first_changed": 2 / 5,
    "accuracy_first_changed": 0.5,
    "accuracy_first_kept": 1.0,
    # SFT mean positions: sentence rhythm 2/3, vocabulary 0.25, tone 0.5, punctuation 0.5;
    # per output: -0.5, +1, -1, NaN, NaN, (unparsed) -> mean -1/6
    "mean_order_rho": -1 / 6,
    "distinct_criteria_last_step": 4,
    "criteria_entropy_last_step": 2.0,  # four criteria named once each
    "rule_verification_first": 0.0,
    "rule_verification_last": 0.5,
    "rule_verification_all": 2 / 6,
    "rule_backtracking_all": 3 / 6,
    "rule_subgoal_setting_all": 4 / 6,
    "rule_backward_chaining_all": 2 / 6,
    "rule_backward_chaining_last": 0.5,
    "rule_subgoal_setting_first": 0.0,
}


def make_run(root: Path, with_eval: bool) -> Path:
    """A run folder in the stage owners' formats: RFT completions (``step, pair_id, label,
    completion, reward``), full SFT traces, and the base model's evaluation completions."""
    run = root / "run"
    write_jsonl(runfiles.completions_path(run), [{**r, "reward": 0.0} for r in COMPLETIONS])
    write_jsonl_atomic(
        [make_trace(pair(i, lab), "t", c) for i, lab, c in SFT_TRACES], runfiles.faithful_traces_path(run)
    )
    if with_eval:
        write_eval_completions(run, "base", [eval_record(i, "base", c, label=lab) for i, lab, c in BASE_EVAL])
    return run


@pytest.fixture(autouse=True)
def kernel_sees_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel runs in notebooks/: make persrm_lib importable there even without an editable install."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + existing if existing else ""))


def execute(run: Path, out: Path, **params: object) -> tuple[dict, str]:
    execute_notebook(str(NOTEBOOK), str(out), {"profile": "tiny", "run_dir": str(run), **params}, str(NOTEBOOKS_DIR))
    executed = json.loads(out.read_text())
    text = "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for cell in executed["cells"]
        if cell["cell_type"] == "code"
        for o in cell["outputs"]
    )
    return json.loads((run / "metrics" / "07_behavior_analysis.json").read_text()), text


def check_expected(metrics: dict) -> None:
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key


@pytest.mark.slow
def test_notebook_07_both_classifiers_with_base_eval(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_eval=True)
    metrics, text = execute(
        run, tmp_path / "07.ipynb", classifier="both", llm_model="tiny-random", llm_max_new_tokens=8
    )
    check_expected(metrics)
    assert metrics["classifier"] == "both" and metrics["n_eval_stages"] == 1
    # tiny-random writes garbage: every one of the 6 x 4 answers is a count or a reported failure
    assert metrics["llm_queries"] == 24
    assert 0 <= metrics["llm_parse_failures"] <= 24
    assert metrics["llm_parse_failure_rate"] == pytest.approx(metrics["llm_parse_failures"] / 24)
    assert {f"kappa_{b}" for b in ("verification", "backtracking", "subgoal_setting", "backward_chaining")} <= set(
        metrics
    )
    assert "no sft completions: " in text  # the absence is said, not hidden (the evaluation reader's note)
    assert "absent: sft completions" in text  # and by the notebook
    assert "[step 1, pair p1] Wait, A is off." in text  # a real quoted example with step and pair
    for name in ("07_behaviors_over_steps", "07_behaviors_by_stage", "07_criteria_over_steps"):
        assert (run / "figures" / f"{name}.png").is_file()
    for name in (
        "counts_rule.csv",
        "counts_llm.csv",
        "agreement.csv",
        "stages.csv",
        "criteria_per_step.csv",
        "examples.json",
    ):
        assert (run / "behavior" / name).is_file()


@pytest.mark.slow
def test_notebook_07_rule_only_without_eval(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_eval=False)
    metrics, text = execute(run, tmp_path / "07.ipynb", classifier="rule")
    check_expected(metrics)
    assert metrics["n_eval_stages"] == 0 and "llm_queries" not in metrics
    assert "no base completions: " in text and "no sft completions: " in text  # the reader's notes
    assert "absent: base, sft completions" in text
    assert "agreement needs classifier = 'both'; skipped" in text
