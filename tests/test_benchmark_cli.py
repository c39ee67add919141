"""Issue 20, case 5, for the benchmark scripts: every argument is checked before a model loads or any
work starts; a bad one exits with status 2 and ONE line on stderr naming it and its allowed range
(:class:`persrm_lib.core.cli.Parser`). Each case stops in the argument checks: no model is loaded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from train_fixtures import make_pair, make_trace, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.paths import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
_loaded: dict[str, ModuleType] = {}


def script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (loaded once; order_robust_grpo imports capacity_probe)."""
    if name not in _loaded:
        sys.path.insert(0, str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(f"bench_cli_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def staged(run: Path) -> Path:
    """A run folder with tiny train, validation and held-out pairs (two exemplars each) and faithful traces."""
    write_jsonl(runfiles.faithful_traces_path(run), [make_trace(i) for i in range(4)])
    for split, first in (("train", 0), ("validation", 10), ("test_sotu", 20)):
        write_jsonl(runfiles.pairs_path(run, split), [make_pair(first + i) for i in range(4)])
    return run


def adapter(folder: Path) -> Path:
    """A folder that passes for an adapter (only its config is looked at before training)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    return folder


PROBE = ["--run-dir", "{run}", "--probe", "verdict", "--out", "{tmp}/probe.json"]
GRPO = ["--run-dir", "{run}", "--sft-adapter", "{adapter}", "--out", "{tmp}/grpo.json"]
DEVICE = ["--out", "{tmp}/device", "--data", "{run}"]
STAGE_HINT = "(python -m persrm_lib.run --profile PROFILE --only 01)"


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        # bench_generation: a measurement of no pairs
        ("bench_generation", ["--n", "0"], "argument --n: must be a whole number of at least 1, got '0'"),
        # bench_generation: more pairs than the sotu speeches give (two passages a pair, three exemplars)
        (
            "bench_generation",
            ["--n", "200"],
            "argument --n: must be a whole number in [1, 123] with --exemplars 3 (the sotu package has 249 "
            "speeches), got '200'",
        ),
        # bench_generation: a batch size of zero among several
        (
            "bench_generation",
            ["--batch-sizes", "8", "0"],
            "argument --batch-sizes: must be a whole number of at least 1, got '0'",
        ),
        # bench_generation: more exemplars than a prompt numbers
        ("bench_generation", ["--exemplars", "9"], "argument --exemplars: must be a whole number in [1, 8], got '9'"),
        # bench_generation: no thread (the profile setting num_threads's range)
        ("bench_generation", ["--threads", "0"], "argument --threads: must be a whole number in [1, 256], got '0'"),
        # bench_generation: time the adapter only, with no adapter to time
        (
            "bench_generation",
            ["--no-base", "--adapter", "{tmp}/none"],
            "argument --no-base: times the adapter only, and --adapter {tmp}/none holds none",
        ),
        # bench_training: no optimiser step (it used to be checked by hand, in two lines)
        ("bench_training", ["--steps", "0"], "argument --steps: must be a whole number of at least 1, got '0'"),
        # bench_training: the paper profile's SFT batch of 64 needs more sotu pairs than there are for 2 steps
        (
            "bench_training",
            ["--profile", "paper"],
            "argument --steps: must be a whole number in [1, 1] with --profile paper (128 sotu pairs per sft step, "
            "at most 249), got '2'",
        ),
        # bench_training: one thread count of several out of range
        (
            "bench_training",
            ["--threads", "1", "300"],
            "argument --threads: must be a whole number in [1, 256], got '300'",
        ),
        # capacity_probe: an epoch count that is not a number
        (
            "capacity_probe",
            [*PROBE, "--epochs", "nan"],
            "argument --epochs: must be a finite number above 0, got 'nan'",
        ),
        # capacity_probe: a learning rate outside the profile setting's range
        (
            "capacity_probe",
            [*PROBE, "--learning-rate", "2"],
            "argument --learning-rate: must be a finite number in [0, 1], got '2'",
        ),
        # capacity_probe: more exemplars than a prompt numbers
        (
            "capacity_probe",
            [*PROBE, "--n-exemplars", "9"],
            "argument --n-exemplars: must be a whole number in [0, 8], got '9'",
        ),
        # capacity_probe: a negative seed
        (
            "capacity_probe",
            [*PROBE, "--seed", "-1"],
            "argument --seed: must be a whole number in [0, 4294967295], got '-1'",
        ),
        # capacity_probe: a run folder without pairs
        (
            "capacity_probe",
            ["--run-dir", "{tmp}/empty", "--probe", "verdict", "--out", "{tmp}/probe.json"],
            f"argument --run-dir: no {{tmp}}/empty/data/pairs/train.jsonl: make the pairs first {STAGE_HINT}",
        ),
        # capacity_probe: --out names a folder (it used to fail at the final write, after training)
        (
            "capacity_probe",
            ["--run-dir", "{run}", "--probe", "verdict", "--out", "{tmp}"],
            "argument --out {tmp}: is a folder; name a file, e.g. --out {tmp}/result.json",
        ),
        # capacity_probe: held-out pairs with fewer exemplars than asked for (read before anything loads)
        (
            "capacity_probe",
            [*PROBE, "--test-exemplars", "3"],
            "argument --test-exemplars: no held-out pair of sotu has 3 exemplars: use --test-exemplars 0 (the pairs' own)",
        ),
        # order_robust_grpo: a variant that does not exist (it used to fail after the first variant trained)
        (
            "order_robust_grpo",
            [*GRPO, "--variants", "per-prompt,bogus"],
            "argument --variants: bogus; choose from per-prompt, joint, each at most once",
        ),
        # order_robust_grpo: no GRPO step
        (
            "order_robust_grpo",
            [*GRPO, "--steps", "0"],
            "argument --steps: must be a whole number of at least 1, got '0'",
        ),
        # order_robust_grpo: no validation pair to judge
        (
            "order_robust_grpo",
            [*GRPO, "--eval-pairs", "0"],
            "argument --eval-pairs: must be a whole number of at least 1, got '0'",
        ),
        # order_robust_grpo: an SFT adapter that is not there
        (
            "order_robust_grpo",
            ["--run-dir", "{run}", "--sft-adapter", "{tmp}/none", "--out", "{tmp}/grpo.json"],
            "argument --sft-adapter: {tmp}/none is not an adapter folder (no adapter_config.json)",
        ),
        # grpo_hard_pairs: a variant that does not exist
        (
            "grpo_hard_pairs",
            [*GRPO, "--variants", "hard,bogus"],
            "argument --variants: got ['hard', 'bogus']; choose from all, hard, each at most once",
        ),
        # grpo_hard_pairs: no candidate pair to judge
        (
            "grpo_hard_pairs",
            [*GRPO, "--candidates", "0"],
            "argument --candidates: must be a whole number of at least 1, got '0'",
        ),
        # grpo_hard_pairs: a GRPO setting out of its range, refused before the pairs are read
        (
            "grpo_hard_pairs",
            [*GRPO, "--set", "grpo.temperature", "-1"],
            "argument --set: profile 'cpu': grpo.temperature must be a finite number in (0, inf), got -1.0",
        ),
        # grpo_hard_pairs: a setting the script sets itself
        (
            "grpo_hard_pairs",
            [*GRPO, "--set", "grpo.max_steps", "5"],
            "argument --set: grpo.max_steps is this script's own (--steps; no evaluation during GRPO)",
        ),
        # grpo_hard_pairs: a run folder without held-out persona pairs
        (
            "grpo_hard_pairs",
            GRPO,
            "argument --run-dir: no {run}/data/pairs/test_personas.jsonl: make the pairs (python -m persrm_lib.run "
            "--profile cpu --only 01 --run-dir {run})",
        ),
        # device_check: a budget that leaves no step its minimum of 20 seconds
        (
            "device_check",
            [*DEVICE, "--budget", "-1"],
            "argument --budget: must be a finite number of at least 20, got '-1'",
        ),
        # device_check: no pair to judge
        (
            "device_check",
            [*DEVICE, "--judge-limit", "0"],
            "argument --judge-limit: must be a whole number of at least 1, got '0'",
        ),
        # device_check: a training timeout that is not a number
        (
            "device_check",
            [*DEVICE, "--train-timeout", "inf"],
            "argument --train-timeout: must be a finite number of at least 20, got 'inf'",
        ),
        # device_check: unstaged data (it used to exit 1 after --out was made)
        (
            "device_check",
            ["--out", "{tmp}/device", "--data", "{tmp}/empty"],
            "argument --data: no {tmp}/empty/data/traces_faithful.jsonl: stage the data first (device_check.sh stage)",
        ),
        # device_check: a profile override out of its range (every training run would have failed alike)
        (
            "device_check",
            [*DEVICE, "--set", "sft.learning_rate=nan"],
            "argument --set: profile 'device': sft.learning_rate must be a finite number in [0, 1], got nan",
        ),
    ],
)
def test_a_benchmark_refuses_a_bad_argument_in_one_line_before_any_model_loads(
    name: str, argv: list[str], message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    from persrm_lib.models import registry

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(registry, "load_model", no_model)
    fields = {"tmp": tmp_path, "run": staged(tmp_path / "run"), "adapter": adapter(tmp_path / "sft")}
    module = script(name)
    with pytest.raises(SystemExit) as info:
        module.main([arg.format(**fields) for arg in argv])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"benchmarks/{name}.py: error: {message.format(**fields)}\n"
    assert captured.out == ""
    assert not (tmp_path / "device").exists()  # device_check made nothing


def test_library_lines_counts_code_without_docstrings_comments_or_blanks(capsys) -> None:
    module = script("library_lines")
    source = 'def f(x):\n    """Doc\n    string."""\n\n    # a comment\n    return (x +\n            1)  # trailing\n'
    assert module.code_lines(source) == 3  # def, and the two lines of the return
    assert module.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| group | module | lines | code lines |"
    assert {line.split("`")[1] for line in out if line.startswith("| method | `")} == set(module.METHOD)
    assert out[-1].startswith("| **library** | | **")


CURVE_HEADER_BEFORE_LORA_LAYERS = (
    "formulation,step,examples,train_loss,n_pairs,format,accuracy,order_consistent,a_preference,criteria_exact,"
    "oc_held_out_operator,oc_unseen_combination,oc_adversarial,val_order_consistent,val_criteria_exact,"
    "eval_seconds,train_seconds,lr,rank,batch,passage_words,seed,device\n"
)


@pytest.mark.parametrize(
    ("header", "extra", "message"),
    [
        # a negative layer count
        (None, ["--lora-layers", "-1"], "--lora-layers must be 0 (all layers) or more, got -1"),
        # a CSV from before the lora_layers column cannot hold a top-layers run: its rows would read as all layers
        (CURVE_HEADER_BEFORE_LORA_LAYERS, ["--lora-layers", "15"], "has no lora_layers column, so it cannot hold"),
        # a LoRA+ ratio under 1 would slow the B matrices down; 0 is plain LoRA
        (None, ["--loraplus-ratio", "0.5"], "--loraplus-ratio must be 0 (plain LoRA) or at least 1, got 0.5"),
        # nor can it hold a LoRA+ run
        (CURVE_HEADER_BEFORE_LORA_LAYERS, ["--loraplus-ratio", "16"], "has no loraplus_ratio column, so it cannot"),
        # a CSV of some other table
        ("step,accuracy\n", [], "has other columns than this script writes"),
    ],
)
def test_the_learning_curve_refuses_bad_layers_and_foreign_csvs(header, extra, message, tmp_path, capsys) -> None:
    out = tmp_path / "curve.csv"
    if header is not None:
        out.write_text(header)
    with pytest.raises(SystemExit) as info:
        script("persona_learning_curve").parse_args(["--out", str(out), *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert header is None or out.read_text() == header  # the existing rows are untouched


def test_the_learning_curve_appends_all_layer_runs_to_an_older_csv(tmp_path) -> None:
    module = script("persona_learning_curve")
    out = tmp_path / "curve.csv"
    out.write_text(CURVE_HEADER_BEFORE_LORA_LAYERS)
    args = module.parse_args(["--out", str(out)])
    assert (args.lora_layers, args.loraplus_ratio) == (0, 0.0)  # the defaults: accepted
    # and the report reads such a file as all layers
    row = "pointwise-trace,250,500,0.13,32,1.0,0.0,0.0,,0.0,0.0,0.0,0.0,0.0,0.06,101.4,549.5,0.0003,16,2,20,0,cpu\n"
    out.write_text(CURVE_HEADER_BEFORE_LORA_LAYERS + row)
    table = module.report([out]).splitlines()
    assert table[2].startswith("| pointwise-trace | 250 | 500 | 0.13 |")
    # a row with every column names its LoRA+ ratio and top layers in the curve's label
    full = tmp_path / "full.csv"
    values = row.strip() + ",15,4.0"
    full.write_text(",".join(module.FIELDS) + "\n" + values + "\n")
    assert module.report([full]).splitlines()[2].startswith("| pointwise-trace (top 15 layers, LoRA+ ratio 4) | 250 |")


def test_the_learning_curve_resumes_only_a_state_trained_the_same_way(tmp_path) -> None:
    module = script("persona_learning_curve")
    args = module.parse_args(["--out", str(tmp_path / "c.csv"), "--lr", "1e-3", "--loraplus-ratio", "16"])
    path = tmp_path / "pointwise-trace.pt"
    assert module.resume_problem({"lr": 1e-3, "loraplus_ratio": 16.0}, args, path) is None
    problem = module.resume_problem({"lr": 1e-3, "loraplus_ratio": 4.0}, args, path)
    assert problem == (
        f"--resume: {path} was trained with --loraplus-ratio 4; resume with the same settings or write to "
        "another --state-dir"
    )
    # a state saved before the two were recorded: plain LoRA, its learning rate unknown
    assert "--loraplus-ratio 0" in module.resume_problem({}, args, path)
    plain = module.parse_args(["--out", str(tmp_path / "c.csv"), "--lr", "5e-4"])
    assert module.resume_problem({}, plain, path) is None
    assert "--lr 0.001" in module.resume_problem({"lr": 1e-3, "loraplus_ratio": 0.0}, plain, path)
