"""``python -m persrm_lib.train``: argument parsing, clear errors, one tiny run, and the
accelerate / DeepSpeed configs it is launched with."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from test_training import make_trace, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.paths import REPO_ROOT
from persrm_lib.models import backend
from persrm_lib.train import cli as train

ACCELERATE_DIR = REPO_ROOT / "configs" / "accelerate"
DEEPSPEED_DIR = REPO_ROOT / "configs" / "deepspeed"


def test_parse_args_with_overrides(tmp_path) -> None:
    args, profile = train.parse_args(
        ["grpo", "--profile", "tiny", "--run-dir", str(tmp_path), "--set", "grpo.beta=0.01", "--set", "seed=3"]
    )
    assert (args.stage, args.run_dir, args.no_sft) == ("grpo", tmp_path, False)
    assert (profile.name, profile.grpo.beta, profile.seed) == ("tiny", 0.01, 3)
    assert profile.grpo.num_generations == 2  # untouched settings keep the profile's values


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sft", "--profile", "tiny", "--set", "sft.bogus=1"],
            r"--set: unknown profile setting 'sft.bogus'",
        ),  # bad key
        (["sft", "--profile", "tiny", "--set", "nothing"], r"--set 'nothing': expected key=value"),  # no '='
        (["sft", "--profile", "tiny", "--set", "=3"], r"--set '=3': expected key=value"),  # empty key
        (["sft", "--profile", "tiny", "--set", "sft.max_steps=many"], r"override sft.max_steps='many': expected int"),
        (
            ["grpo", "--profile", "tiny", "--set", "grpo.batch_size=5"],
            r"grpo.batch_size=5 does not divide by",
        ),  # invalid
        (["train", "--profile", "tiny"], r"invalid choice: 'train'"),  # unknown stage
        (["sft", "--profile", "huge"], r"argument --profile: invalid choice: 'huge'"),  # unknown profile
        (["sft", "--profile", "tiny", "--pairs", "p.jsonl"], r"--pairs, --sft-adapter and --no-sft apply to the grpo"),
        (["grpo", "--profile", "tiny", "--traces", "t.jsonl"], r"--traces applies to the sft stage only"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as excinfo:
        train.parse_args([*argv, "--run-dir", str(tmp_path)])
    assert excinfo.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_parse_set() -> None:
    assert train.parse_set(["a.b=1", " c = x=y "]) == {"a.b": "1", "c": "x=y"}
    assert train.parse_set(None) == {}


def test_main_runs_sft(tmp_path, capsys) -> None:
    write_jsonl(runfiles.faithful_traces_path(tmp_path), [make_trace(i) for i in range(4)])
    summary_file = tmp_path / "summary.json"
    argv = ["sft", "--profile", "tiny", "--run-dir", str(tmp_path), "--set", "sft.max_steps=1"]
    assert train.main([*argv, "--backend", "transformers", "--summary", str(summary_file)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex('{\n  "stage"') :])  # the summary is printed last
    assert (summary["stage"], summary["steps"], summary["backend"]) == ("sft", 1, "transformers")
    assert summary["adapter_dir"] == str(runfiles.adapter_dir(tmp_path, "sft"))
    assert (runfiles.adapter_dir(tmp_path, "sft") / "adapter_model.safetensors").is_file()
    assert json.loads(summary_file.read_text()) == summary  # --summary writes what is printed
    assert (summary["profile"], summary["examples"], summary["device"]) == ("tiny", 8, "cpu")  # 4 traces in both orders
    assert summary["peak_gpu_memory_mb"] is None  # CPU: no GPU memory to report
    assert summary["seconds_per_step"] > 0 and summary["tokens_per_second"] > 0
    assert summary["mean_reward"] is None and summary["format_rate"] is None  # GRPO figures only


# ---- --backend ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, None, "transformers"),  # CPU, nothing asked: auto
        ("transformers", "unsloth", "transformers"),  # the flag wins over the variable
        ("auto", "unsloth", "transformers"),  # an explicit auto too
        (None, "transformers", "transformers"),  # the variable still works without the flag
    ],
)
def test_resolve_backend(monkeypatch, flag, env, expected) -> None:
    if env is None:
        monkeypatch.delenv("PERSRM_BACKEND", raising=False)
    else:
        monkeypatch.setenv("PERSRM_BACKEND", env)
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    assert train.resolve_backend(flag) == expected


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--backend", "unsloth"], None, r"error: backend=unsloth cannot run: no CUDA device is visible$"),
        ([], "unsloth", r"error: PERSRM_BACKEND=unsloth cannot run: no CUDA device is visible$"),
        ([], "jax", r"error: PERSRM_BACKEND='jax' is not a backend; choose one of auto, unsloth, transformers"),
        (["--backend", "jax"], None, r"argument --backend: invalid choice: 'jax'"),
    ],
)
def test_forced_unsloth_without_a_gpu_exits_before_reading_data(
    monkeypatch, tmp_path, capsys, argv, env, message
) -> None:
    if env is None:
        monkeypatch.delenv("PERSRM_BACKEND", raising=False)
    else:
        monkeypatch.setenv("PERSRM_BACKEND", env)
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    monkeypatch.setattr(backend, "unsloth_installed", lambda: True)
    with pytest.raises(SystemExit) as excinfo:  # the run folder is empty: the backend is refused first
        train.main(["sft", "--profile", "tiny", "--run-dir", str(tmp_path), *argv])
    assert excinfo.value.code == 2
    assert re.search(message, capsys.readouterr().err.strip(), re.MULTILINE)


def test_step_stats_from_log_rows() -> None:
    rows = [
        {"step": 1, "seconds_per_step": 2.0, "num_tokens": 100.0, "reward": -1.0, "format_violation": 1.0},
        {"step": 3, "seconds_per_step": 1.0, "num_tokens": 400.0, "reward": 0.0, "format_violation": 0.5},
    ]
    stats = train.step_stats(rows)
    assert stats == {
        "step_seconds": 4.0,  # 2 s for step 1, then 1 s for each of steps 2 and 3
        "seconds_per_step": 1.3333,
        "num_tokens": 400.0,
        "tokens_per_second": 100.0,
        "mean_reward": -0.5,
        "format_rate": 0.25,
    }
    empty = train.step_stats([])
    assert empty["seconds_per_step"] is None and empty["tokens_per_second"] is None
    assert train.step_stats([{"step": 1, "seconds_per_step": "", "loss": 1.0}])["seconds_per_step"] is None


# ---- accelerate and DeepSpeed configs ------------------------------------------------------------

# accelerate refuses these beside a deepspeed_config_file (they belong in the JSON file)
FORBIDDEN_BESIDE_JSON = {
    "gradient_accumulation_steps",
    "gradient_clipping",
    "zero_stage",
    "offload_optimizer_device",
    "offload_param_device",
    "zero3_save_16bit_model",
}


@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_deepspeed_accelerate_configs_load(name: str, stage: int) -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    path = ACCELERATE_DIR / f"{name}.yaml"
    config = load_config_from_file(str(path))  # accelerate's own loader: unknown keys are refused
    assert config.distributed_type.value == "DEEPSPEED"
    raw = yaml.safe_load(path.read_text())
    assert "mixed_precision" not in raw  # set by the trainer (bf16) through the JSON's "auto"
    ds = config.deepspeed_config
    assert not FORBIDDEN_BESIDE_JSON & set(ds)
    ds_file = REPO_ROOT / ds["deepspeed_config_file"]  # relative to the repository root
    assert ds_file == DEEPSPEED_DIR / f"zero{stage}.json"
    assert ds["zero3_init_flag"] is (stage == 3)
    plugin = DeepSpeedPlugin(hf_ds_config=str(ds_file))  # parses the JSON; DeepSpeed itself is not needed
    assert plugin.zero_stage == stage


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_json_leaves_batch_and_precision_to_the_trainer(stage: int) -> None:
    config = json.loads((DEEPSPEED_DIR / f"zero{stage}.json").read_text())
    assert config["zero_optimization"]["stage"] == stage
    for key in (
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert config[key] == "auto", key  # filled in from the profile by the HF trainer
    assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    if stage == 3:
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_multi_gpu_config_loads() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE_DIR / "multi_gpu.yaml"))
    assert (config.distributed_type.value, config.mixed_precision) == ("MULTI_GPU", "bf16")
