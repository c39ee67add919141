"""Notebooks 05_evaluate and 06_training_dynamics end to end with papermill on a hand-made run folder
(tiny profile: hand-made pairs, untrained LoRA adapters of tiny-random, hand-written training logs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eval_fixtures import RFT_FROM_BASE_ROWS, RFT_ROWS, SFT_ROWS, make_pairs, make_run

from persrm_lib.core import runfiles
from persrm_lib.core.config import get_profile
from persrm_lib.core.paths import NOTEBOOKS_DIR, REPO_ROOT
from persrm_lib.evaluate.judges import make_judge
from persrm_lib.evaluate.records import read_eval_completions
from persrm_lib.run.runner import execute_notebook


@pytest.fixture(autouse=True)
def kernel_sees_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel runs in notebooks/: make persrm_lib importable there even without an editable install."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + existing if existing else ""))


def execute(name: str, run: Path, out: Path, **parameters) -> None:
    execute_notebook(
        str(NOTEBOOKS_DIR / f"{name}.ipynb"),
        str(out / f"{name}.ipynb"),
        {"profile": "tiny", "run_dir": str(run), **parameters},
        str(NOTEBOOKS_DIR),
    )


@pytest.mark.slow
def test_notebooks_05_then_06(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    execute("05_evaluate", run, tmp_path)
    found = json.loads((run / "metrics" / "05_evaluate.json").read_text())
    goals = (runfiles.stage_dir(run, "eval") / "goals.csv").read_text().splitlines()
    assert goals[0] == "goal,value,interval,target,met,decisive"
    assert found["goals"] == len(goals) - 1 == 8 and found["goals_met"] == 0  # untrained: none met

    # the char-ngram row is what the library computes on the same pairs (1 exemplar in the tiny profile)
    judge = make_judge("char-ngram").fit(make_pairs(8))
    test = make_pairs(16)[8:] + make_pairs(24)[16:]
    expected = sum(v.preferred == p["label"] for v, p in zip(judge.score_batch(test, 1), test, strict=True)) / len(test)
    assert found["accuracy_char_ngram"] == pytest.approx(expected, abs=1e-4)
    assert found["n_char_ngram"] == 16 and found["main_exemplars"] == 1
    settings = get_profile("tiny").evaluation
    for stage in ("rm_base", "rm_sft", "rm_rft"):  # every stage ran, on the profile's number of pairs
        assert found[f"n_{stage}"] == 2 * settings.generative_pairs
        assert found[f"format_{stage}"] == 0.0  # untrained tiny-random never writes the format
        # judged in both orders (the notebook's default): never right in both; no parsed verdict, no eval side
        assert found[f"order_consistent_{stage}"] == 0.0 and found[f"too_long_{stage}"] == 0
        assert found[f"a_preference_{stage}"] is None and found[f"reasoning_{stage}"] is None
    assert found["n_scalar_rm"] == found["n_loglik"] == 2 * settings.model_pairs

    eval_dir = runfiles.stage_dir(run, "eval")
    for table in ("accuracy_by_benchmark", "accuracy_by_exemplars", "accuracy_by_negative_kind", "summary"):
        assert (eval_dir / f"{table}.csv").is_file() and (eval_dir / f"{table}.md").read_text().startswith("|")
    assert (eval_dir / "accuracy_by_benchmark.md").read_text().count("\n") == 2 + found["judges"]
    by_stage, _ = read_eval_completions(run)  # what 07_behavior_analysis reads
    assert sorted(by_stage) == ["base", "rft", "sft"]
    assert len(by_stage["sft"]) == 2 * 2 * settings.generative_pairs  # original and swapped order
    for name in (
        "05_accuracy_by_benchmark",
        "05_accuracy_by_exemplars",
        "05_accuracy_by_negative_kind",
        "05_order_robustness",
        "05_rm_vs_baselines",
    ):
        assert (run / "figures" / f"{name}.png").is_file()

    execute("06_training_dynamics", run, tmp_path)
    dynamics = json.loads((run / "metrics" / "06_training_dynamics.json").read_text())
    assert dynamics["sft_steps"] == len(SFT_ROWS)
    assert dynamics["sft_first_loss"] == pytest.approx(SFT_ROWS[0]["loss"])
    assert dynamics["sft_final_loss"] == pytest.approx(SFT_ROWS[-1]["loss"])
    assert dynamics["rft_steps"] == len(RFT_ROWS)
    assert dynamics["rft_final_reward"] == RFT_ROWS[-1]["reward"]
    assert dynamics["rft_final_share_correct"] == RFT_ROWS[-1]["correct"]
    assert dynamics["rft_from_base_steps"] == len(RFT_FROM_BASE_ROWS)
    assert dynamics["rft_missing_columns"] == 2  # seconds_per_step left blank, no validation accuracy
    assert dynamics["accuracy_rm_sft"] == found["accuracy_rm_sft"]
    for name in (
        "06_sft_loss",
        "06_rft_reward",
        "06_rft_outcomes",
        "06_rft_order_robustness",
        "06_rft_length_kl",
        "06_rft_from_base",
    ):
        assert (run / "figures" / f"{name}.png").is_file()


@pytest.mark.slow
def test_notebook_06_without_logs_says_what_is_missing(tmp_path: Path) -> None:
    run = make_run(tmp_path, adapters=(), with_logs=False)
    execute("06_training_dynamics", run, tmp_path)
    dynamics = json.loads((run / "metrics" / "06_training_dynamics.json").read_text())
    assert (dynamics["sft_steps"], dynamics["rft_steps"], dynamics["rft_from_base_steps"]) == (0, 0, 0)
    assert dynamics["rft_final_reward"] is None
    executed = json.loads((tmp_path / "06_training_dynamics.ipynb").read_text())
    text = "".join(
        "".join(o.get("text", "")) for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]
    )
    assert "sft: not drawn (training log" in text and "does not exist" in text
    assert not (run / "figures" / "06_rft_reward.png").exists()


def test_profile_evaluation_settings_exist_for_every_profile() -> None:
    from persrm_lib.core.config import PROFILES

    for name in PROFILES:
        settings = get_profile(name).evaluation
        assert settings.model_pairs >= 0 and settings.generative_pairs >= 0 and settings.scalar_rm_steps > 0
    assert get_profile("paper").evaluation.generative_pairs == 0  # the paper setting scores every pair
    assert get_profile("smoke").data.eval_exemplar_counts == (1, 3)
