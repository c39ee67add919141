"""The GPU check script (benchmarks/device_check.py and .sh), run on this CPU machine with the tiny
random model: its records, its failure handling and its table. The GPU itself is not exercised here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import make_pair, make_trace, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.paths import REPO_ROOT, cache_dir

SCRIPT = REPO_ROOT / "benchmarks" / "device_check.py"
SHELL = REPO_ROOT / "benchmarks" / "device_check.sh"
N_PAIRS = 4


def _load_module():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


device_check = _load_module()


@pytest.fixture()
def staged(tmp_path: Path) -> Path:
    """A staged data folder as `device_check.sh stage` leaves it (.device/data), tiny."""
    data = tmp_path / "data-run"
    write_jsonl(runfiles.faithful_traces_path(data), [make_trace(i) for i in range(N_PAIRS)])
    write_jsonl(runfiles.pairs_path(data, "train"), [make_pair(i) for i in range(N_PAIRS)])
    write_jsonl(runfiles.pairs_path(data, "test_sotu"), [make_pair(10 + i) for i in range(N_PAIRS)])
    return data


def _env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "PERSRM_CACHE": str(cache_dir()),  # the tiny model is already built there
        "PYTHON": sys.executable,
        "DEVICE_WORK": str(tmp_path / "work"),
        "OMP_NUM_THREADS": "1",
    }


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*-*.json")}


# ---- pieces ---------------------------------------------------------------------------------------


def test_summary_table_marks_missing_values() -> None:
    records = [
        {"backend": "transformers", "stage": "sft", "status": "ok", "steps": 30, "seconds_per_step": 0.1234567},
        {"backend_requested": "unsloth", "stage": "sft", "status": "failed"},
    ]
    lines = device_check.summary_table(records).splitlines()
    assert lines[0].startswith("| backend | stage | status | steps | s/step | tokens/s | peak MiB")
    assert lines[2] == "| transformers | sft | ok | 30 | 0.1235 | – | – | – | – | – | – |"
    assert lines[3] == "| unsloth | sft | failed | – | – | – | – | – | – | – | – |"  # the backend asked for


def test_judge_pairs_file_prefers_sotu_then_any_test_file(staged: Path) -> None:
    assert device_check.judge_pairs_file(staged, None) == runfiles.pairs_path(staged, "test_sotu")
    runfiles.pairs_path(staged, "test_sotu").rename(runfiles.pairs_path(staged, "test_aaac"))
    assert device_check.judge_pairs_file(staged, None) == runfiles.pairs_path(staged, "test_aaac")
    runfiles.pairs_path(staged, "test_aaac").unlink()
    with pytest.raises(FileNotFoundError, match=r"no held-out pairs \(test_\*.jsonl\)"):
        device_check.judge_pairs_file(staged, None)


def test_run_step_records_failure_and_timeout() -> None:
    failed = device_check.run_step([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], timeout=30)
    assert (failed["status"], failed["returncode"], failed["error"]) == ("failed", 3, "boom")
    slow = device_check.run_step([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert slow["status"] == "timeout" and slow["error"].startswith("killed after 1 s")
    assert slow["seconds_wall"] < 20


def test_bad_backend_list_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as excinfo:
        device_check.parse_args(["--out", "x", "--backends", "transformers,jax"])
    assert excinfo.value.code == 2
    assert "--backends: jax; choose from auto, unsloth, transformers" in capsys.readouterr().err


# ---- end to end on CPU --------------------------------------------------------------------------


def test_forced_unsloth_on_cpu_is_recorded_as_failed(staged: Path, tmp_path: Path) -> None:
    """Both Unsloth runs fail with the backend's clear refusal; each is recorded, the check goes on."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--data", str(staged), "--profile", "tiny"]
    cmd += ["--backends", "unsloth", "--work", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    environment = json.loads((out / "environment.json").read_text())
    assert (environment["gpu"], environment["profile"], environment["model"]) == ("cpu", "tiny", "tiny-random")
    assert environment["prepare_model"]["status"] == "ok"
    assert environment["versions"]["torch"] and environment["versions"]["unsloth"] is None
    records = _records(out)
    assert sorted(records) == ["unsloth-grpo", "unsloth-sft"]
    for stage, record in records.items():
        assert record["status"] == "failed", stage
        assert record["returncode"] == 2
        assert "backend=unsloth cannot run: no CUDA device is visible; Unsloth is not installed" in record["error"]
        assert "--backend unsloth" in record["command"]
        assert record["judge"] == {"status": "skipped", "error": "no adapter: training did not succeed"}
    assert records["unsloth-grpo"]["from_sft"] is None  # no SFT adapter anywhere: fresh LoRA
    assert "| unsloth | grpo | failed |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_shell_script_runs_the_whole_check_on_cpu(staged: Path, tmp_path: Path) -> None:
    """`device_check.sh run` without a staged bundle: transformers trains and is judged, Unsloth fails."""
    out = tmp_path / "out"
    cmd = ["bash", str(SHELL), "run", str(out), "--data", str(staged), "--profile", "tiny"]
    cmd += ["--backends", "transformers,unsloth", "--judge-limit", "2", "--set", "grpo.eval_every=0"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no staged bundle in .device/" in proc.stdout
    assert (out / "device_check.log").read_text().count("$ ") == 7  # prepare, 4 trainings, 2 judgements
    records = _records(out)
    assert sorted(records) == ["transformers-grpo", "transformers-sft", "unsloth-grpo", "unsloth-sft"]
    sft, grpo = records["transformers-sft"], records["transformers-grpo"]
    for record, steps in ((sft, 2), (grpo, 1)):  # the tiny profile's max_steps
        assert (record["status"], record["backend"], record["steps"], record["gpu"]) == (
            "ok",
            "transformers",
            steps,
            "cpu",
        )
        assert record["seconds_per_step"] > 0 and record["tokens_per_second"] > 0
        assert record["peak_gpu_memory_mb"] is None  # CPU
        assert record["final_loss"] == record["final_loss"]  # not NaN
        assert record["judge"]["status"] == "ok" and record["judge"]["n"] == 2
        assert 0 <= record["accuracy"] <= 1 and 0 <= record["format_rate"] <= 1
    assert sft["mean_reward"] is None and -1 <= grpo["mean_reward"] <= 1
    assert 0 <= grpo["train_format_rate"] <= 1
    assert grpo["from_sft"] == sft["adapter_dir"]
    unsloth = records["unsloth-grpo"]
    assert unsloth["status"] == "failed" and unsloth["from_sft"] == sft["adapter_dir"]  # another backend's SFT
    assert "backend=unsloth cannot run" in unsloth["error"]
