"""Notebooks 03_sft and 04_rft_grpo end to end with papermill on a hand-made run folder (faithful traces
rendered with the ONE renderer, and pairs), with the real SmolLM2 of the smoke profile in the pairwise
format (slow); and, fast,
their step counts, which are profile settings (``--set sft.max_steps``, ``--set grpo.max_steps``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_training import log_rows, make_pair, make_trace, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.config import get_profile
from persrm_lib.core.paths import NOTEBOOKS_DIR, REPO_ROOT
from persrm_lib.run.runner import execute_notebook, run_notebooks
from persrm_lib.run.settings import RunSettingsError, check_overrides, store_overrides
from persrm_lib.train.logs import GRPO_COMPLETION_FIELDS, GRPO_LOG_FIELDS, SFT_LOG_FIELDS, read_grpo_completions

N_PAIRS = 16


@pytest.fixture(autouse=True)
def kernel_sees_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel runs in notebooks/: make persrm_lib importable there even without an editable install."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + existing if existing else ""))


STEP_NOTEBOOKS = [NOTEBOOKS_DIR / "03_sft.ipynb", NOTEBOOKS_DIR / "04_rft_grpo.ipynb"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # grpo.max_steps has no "run the epochs" value: refused before 03 runs
        ({"grpo.max_steps": "-1"}, "grpo.max_steps must be an integer in [1, inf), got -1"),
        ({"sft.max_steps": "2.5"}, "override sft.max_steps='2.5': expected int"),
    ],
)
def test_a_step_count_that_does_not_fit_is_refused_before_any_notebook_runs(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    run = tmp_path / "run"
    with pytest.raises(RunSettingsError) as info:
        run_notebooks("smoke", run, only=["03", "04"], settings=settings, log=lambda line: None)
    assert str(info.value) == f"--set for profile 'smoke': {message}"
    assert not run.exists()


def test_sft_max_steps_minus_one_runs_the_epochs() -> None:
    check_overrides("smoke", {"sft.max_steps": "-1"})  # accepted: -1 is "run sft.epochs"
    assert get_profile("smoke", {"sft.max_steps": "-1"}).sft.max_steps == -1


# smoke's model on hand-made sotu-style pairs in the paper's pairwise format, six SFT steps: the
# plumbing of 03 and 04 (the smoke profile itself trains pointwise on personas for 300 steps)
PAIRWISE = {
    "data.benchmarks": "sotu,aaac",
    "data.train_benchmarks": "",
    "prompt.mode": "pairwise",
    "sft.max_steps": "6",
    "sft.learning_rate": "5e-4",
    "grpo.max_completion_length": "64",
}


def make_run(root: Path) -> Path:
    run = root / "run"
    store_overrides(run, "smoke", PAIRWISE)
    write_jsonl(runfiles.faithful_traces_path(run), [make_trace(i) for i in range(N_PAIRS)])
    write_jsonl(runfiles.pairs_path(run, "train"), [make_pair(i) for i in range(N_PAIRS)])
    write_jsonl(runfiles.pairs_path(run, "validation"), [make_pair(i) for i in range(N_PAIRS, N_PAIRS + 4)])
    return run


def execute(name: str, run: Path, out: Path) -> None:
    execute_notebook(
        str(NOTEBOOKS_DIR / f"{name}.ipynb"),
        str(out / f"{name}.ipynb"),
        {"profile": "smoke", "run_dir": str(run)},
        str(NOTEBOOKS_DIR),
    )


@pytest.mark.slow
def test_notebooks_03_then_04_on_smoke(tmp_path: Path) -> None:
    smoke = get_profile("smoke", PAIRWISE)
    run = make_run(tmp_path)

    execute("03_sft", run, tmp_path)
    sft = json.loads((run / "metrics" / "03_sft.json").read_text())
    assert (sft["traces"], sft["steps"], sft["preview_pairs"]) == (N_PAIRS, smoke.sft.max_steps, 2)
    assert 0 < sft["final_loss"] < sft["first_loss"]  # six steps on one repeated trace pattern: the loss falls
    assert sft["seconds"] > 0 and 0 <= sft["preview_format_ok"] <= 2
    sft_log = log_rows(runfiles.log_path(run, "sft"))
    assert [r["step"] for r in sft_log] == list(range(1, smoke.sft.max_steps + 1))
    assert list(sft_log[0]) == list(SFT_LOG_FIELDS)
    assert (runfiles.adapter_dir(run, "sft") / "adapter_model.safetensors").is_file()
    assert (run / "figures" / "03_sft_loss.png").is_file()

    execute("04_rft_grpo", run, tmp_path)
    rft = json.loads((run / "metrics" / "04_rft_grpo.json").read_text())
    assert (rft["pairs"], rft["steps"]) == (N_PAIRS, smoke.grpo.max_steps)
    assert rft["completions"] == smoke.grpo.batch_size * smoke.grpo.max_steps
    assert -1.0 <= rft["final_reward"] <= 1.0 and 0.0 <= rft["final_correct"] <= 1.0
    rft_log = log_rows(runfiles.log_path(run, "rft"))
    assert list(rft_log[0]) == list(GRPO_LOG_FIELDS)
    for row in rft_log:
        assert row["format_violation"] + row["wrong"] + row["correct"] == pytest.approx(1.0)
    records = read_grpo_completions(runfiles.completions_path(run))
    assert sorted({r["step"] for r in records}) == list(range(1, smoke.grpo.max_steps + 1))
    assert all(tuple(r) == GRPO_COMPLETION_FIELDS for r in records)
    assert rft["mean_reward"] == pytest.approx(sum(r["reward"] for r in records) / len(records))
    assert (runfiles.adapter_dir(run, "rft") / "adapter_model.safetensors").is_file()
    # smoke: grpo.eval_every=2, eval_pairs=2 -- one greedy validation evaluation, after the last step
    evaluated = [r["step"] for r in rft_log if r["validation_accuracy"] is not None]
    assert evaluated == [smoke.grpo.eval_every] and rft["validation_evaluations"] == 1
    for row in rft_log:
        if row["step"] in evaluated:  # shares of two pairs: 0, 0.5 or 1
            assert row["validation_accuracy"] in (0.0, 0.5, 1.0) and row["validation_format"] in (0.0, 0.5, 1.0)
            assert row["validation_accuracy"] <= row["validation_format"]  # a correct judgement parses
        else:
            assert row["validation_format"] is None
    assert rft["final_validation_accuracy"] == rft_log[-1]["validation_accuracy"]
    # smoke leaves the §5.1 from-base comparison off (grpo.compare_from_base=False)
    assert (rft["from_base_steps"], rft["from_base_final_reward"]) == (0, None)
    assert not (run / "rft_from_base").exists()
    for name in ("04_rft_reward", "04_rft_outcomes"):
        assert (run / "figures" / f"{name}.png").is_file()
