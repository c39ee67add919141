"""``python -m persrm_lib.evaluate``: any canonical pair file in, per-pair results and metrics out;
each bad input exits with code 2 and a message naming what was wrong. Then notebook 05's suite over a
run folder, its tables, and the evaluation's records (per-pair rows, completions per stage)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from eval_fixtures import make_pairs

from persrm_lib.core.paths import REPO_ROOT
from persrm_lib.data.pairs import write_pairs
from persrm_lib.evaluate.cli import benchmark_name, main
from persrm_lib.evaluate.judges import make_judge, swap_pair
from persrm_lib.evaluate.judging import evaluate_pairs, select_pairs

SUMMARY = re.compile(
    r"^accuracy=(\d\.\d{3}|nan) n=(\d+) format=(\d\.\d{2}|nan) order_consistent=(\d\.\d{3}|nan) "
    r"a_preference=(\d\.\d{2}|nan) reasoning=(\d\.\d{2}|nan) too_long=(\d+) judge=([\w-]+)$"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_pairs(make_pairs(8), tmp_path / "train.jsonl"),
        "test": write_pairs(make_pairs(16)[8:], tmp_path / "test_toy.jsonl"),
        "out": tmp_path / "out" / "result.json",
    }


def run_cli(capsys, argv: list[str]) -> tuple[int, list[str], str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err


def test_char_ngram_run_writes_results_and_prints_summary_last(capsys, files) -> None:
    code, out, err = run_cli(
        capsys,
        ["--pairs", files["test"], "--judge", "char-ngram", "--train-pairs", files["train"], "--n-exemplars", "1"]
        + ["--out", files["out"]],
    )
    assert code == 0, err
    # right in both orders on every pair (so A is preferred in exactly half the per-order verdicts); no eval
    assert out[-1] == (
        "accuracy=1.000 n=8 format=1.00 order_consistent=1.000 a_preference=0.50 reasoning=nan too_long=0 "
        "judge=char-ngram"
    )
    document = json.loads(files["out"].read_text())
    assert document["fitted_on"] == "training pairs (8)"
    assert (document["orders"], document["position_invariant"]) == ("both", True)  # swapped scores mirrored
    assert len(document["results"]) == 8
    first = document["results"][0]
    assert (first["id"], first["benchmark"], first["label"], first["correct"]) == ("pair-08", "toy", "a", True)
    assert document["metrics"]["overall"]["n"] == 8
    assert document["metrics"]["overall"]["consistency"] == 1.0
    assert sorted(document["metrics"]["by"]) == ["benchmark", "genre", "n_exemplars", "negative_kind", "positive_kind"]
    assert {row["negative_kind"]: row["n"] for row in document["metrics"]["by"]["negative_kind"]} == {
        "cross_author": 5,
        "random": 3,
    }


def test_run_is_deterministic(capsys, files, tmp_path: Path) -> None:
    outputs = []
    for name in ("one.json", "two.json"):
        argv = ["--pairs", files["test"], "--judge", "random", "--seed", "5", "--limit", "5", "--out", tmp_path / name]
        assert run_cli(capsys, argv)[0] == 0
        document = json.loads((tmp_path / name).read_text())
        document.pop("seconds")
        outputs.append(document)
    assert outputs[0] == outputs[1]
    assert [r["id"] for r in outputs[0]["results"]] == [p["id"] for p in select_pairs(make_pairs(16)[8:], 5, 5)]


def test_without_train_pairs_fits_on_texts_only(capsys, files) -> None:
    code, out, _ = run_cli(capsys, ["--pairs", files["test"], "--judge", "function-words", "--out", files["out"]])
    assert code == 0
    assert SUMMARY.match(out[-1]).group(8) == "function-words"
    assert json.loads(files["out"].read_text())["fitted_on"].startswith("evaluated pairs' texts, labels not read")


def test_reads_outside_files_with_extra_fields_and_integer_ids(capsys, tmp_path: Path) -> None:
    pairs = [{**p, "id": i, "source_dataset": "elsewhere"} for i, p in enumerate(make_pairs(4))]
    path = tmp_path / "theirs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    code, out, _ = run_cli(
        capsys, ["--pairs", path, "--judge", "random", "--n-exemplars", "1", "--out", tmp_path / "r.json"]
    )
    assert code == 0
    assert SUMMARY.match(out[-1]).group(2) == "4"
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["benchmark"] for r in results] == ["theirs"] * 4
    assert [r["n_exemplars"] for r in results] == [1] * 4


def good_line() -> str:
    return json.dumps(make_pairs(1)[0])


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        # a line cut short: the error names line 2
        ([good_line(), '{"id": "x", "query": "q"'], r"bad\.jsonl line 2: malformed JSON"),
        # a label that is neither a nor b
        (
            [good_line().replace('"label": "a"', '"label": "chosen"')],
            r"line 1: field 'label' must be 'a' or 'b', got 'chosen'",
        ),
        # a missing field
        (
            [json.dumps({k: v for k, v in make_pairs(1)[0].items() if k != "exemplars"})],
            r"line 1: missing field\(s\): exemplars",
        ),
        # an empty file
        ([], r"bad\.jsonl is empty: no pair to read"),
    ],
)
def test_bad_pair_files_exit_2_with_the_reason(capsys, tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    out_file = tmp_path / "r.json"
    code, out, err = run_cli(capsys, ["--pairs", path, "--judge", "random", "--out", out_file])
    assert code == 2
    assert re.search(message, err), err
    assert err.startswith("error: ")
    assert out == []
    assert not out_file.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # more exemplars than the pairs hold
        (
            ["--judge", "random", "--n-exemplars", "5"],
            r"--n-exemplars 5: pair 'pair-08' has 2 exemplar\(s\), 5 requested",
        ),
        # zero exemplars
        (["--judge", "random", "--n-exemplars", "0"], r"--n-exemplars: must be a whole number of at least 1, got '0'"),
        # a model judge without a model
        (["--judge", "generative"], r"--judge generative needs --model"),
        # a scalar reward model has nothing to learn from
        (
            ["--judge", "scalar-rm", "--model", "tiny-random"],
            r"scalar-rm is trained on labelled pairs: pass --train-pairs",
        ),
        # an adapter for a judge that has no model
        (["--judge", "char-ngram", "--adapter", "x"], r"--adapter applies to --judge generative only"),
        # an unknown model name
        (["--judge", "loglik", "--model", "no-such-model"], r"unknown model 'no-such-model'"),
        # a limit of zero
        (["--judge", "random", "--limit", "0"], r"--limit: must be a whole number of at least 1, got '0'"),
    ],
)
def test_bad_settings_exit_2(capsys, files, extra: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, ["--pairs", files["test"], *extra, "--out", files["out"]])
    assert code == 2
    assert re.search(message, err), err


def test_missing_pair_file_exits_2(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(
        capsys, ["--pairs", tmp_path / "nope.jsonl", "--judge", "random", "--out", tmp_path / "r.json"]
    )
    assert code == 2
    assert "nope.jsonl does not exist" in err


def test_adapter_folder_without_config_exits_2(capsys, files, tmp_path: Path) -> None:
    argv = ["--pairs", files["test"], "--judge", "generative", "--model", "tiny-random", "--adapter", tmp_path]
    code, _, err = run_cli(capsys, [*argv, "--out", files["out"]])
    assert code == 2
    assert "no PEFT adapter there (adapter_config.json is missing)" in err


def test_adapter_for_another_base_exits_2_naming_both(capsys, files, tmp_path: Path, tiny_model_dir) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size = 32, 64
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "narrow")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "narrow")
    narrow = Qwen2ForCausalLM.from_pretrained(tmp_path / "narrow")
    get_peft_model(narrow, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "lora")
    argv = ["--pairs", files["test"], "--judge", "generative", "--model", "tiny-random", "--adapter", tmp_path / "lora"]
    code, _, err = run_cli(capsys, [*argv, "--max-new-tokens", "2", "--out", files["out"]])
    assert code == 2
    assert re.search(r"saved for base model '.*narrow'\) does not fit model 'tiny-random' \(hidden size 64\)", err), err
    assert not files["out"].exists()


def test_generative_tiny_random_end_to_end(capsys, files, tiny_model_dir) -> None:
    argv = ["--pairs", files["test"], "--judge", "generative", "--model", "tiny-random", "--limit", "2"]
    code, out, err = run_cli(capsys, [*argv, "--max-new-tokens", "4", "--n-exemplars", "1", "--out", files["out"]])
    assert code == 0, err
    assert out[-1] == (  # a random model writes no format: no verdict parses, so no A-preference either
        "accuracy=0.000 n=2 format=0.00 order_consistent=0.000 a_preference=nan reasoning=nan too_long=0 "
        "judge=generative"
    )
    results = json.loads(files["out"].read_text())["results"]
    assert all(isinstance(r["completion"], str) and isinstance(r["swapped_completion"], str) for r in results)
    assert [r["swapped_format_ok"] for r in results] == [False, False]


def test_position_invariant_swap_equals_scoring_the_swapped_pairs() -> None:
    pairs = make_pairs(16)[8:]
    judge = make_judge("char-ngram").fit(make_pairs(8))
    results = evaluate_pairs(judge, pairs, n_exemplars=1)
    real = judge.score_batch([swap_pair(p) for p in pairs], 1)
    assert results["swapped_s_a"].tolist() == pytest.approx([v.s_a for v in real])
    assert results["swapped_s_b"].tolist() == pytest.approx([v.s_b for v in real])
    assert results["swapped_preferred"].tolist() == [v.preferred for v in real]


class ScriptedJudge:
    """A generative-style judge (not position-invariant) whose scores are a function of the slot and text:
    ``base[text] + bias`` for the response in slot A, ``base[text]`` in slot B; a text in ``broken``
    in slot A gives a format violation. Its eval names the side it scores higher."""

    position_invariant = False
    learns_from = "nothing"

    def __init__(self, base: dict[str, float], bias: float, broken: tuple[str, ...] = (), name: str = "scripted"):
        self.base, self.bias, self.broken, self.name = base, bias, broken, name

    def fit(self, train_pairs):
        return self

    def score_batch(self, pairs, n_exemplars=None):
        from persrm_lib.core.output_format import render_output
        from persrm_lib.evaluate.judges import Verdict

        out = []
        for pair in pairs:
            if pair["response_a"] in self.broken:
                out.append(Verdict(None, None, completion="no tags"))
                continue
            s_a, s_b = self.base[pair["response_a"]] + self.bias, self.base[pair["response_b"]]
            side = "A" if s_a > s_b else "B"
            out.append(Verdict(s_a, s_b, completion=render_output("c", f"{side} is closer to the author.", (s_a, s_b))))
        return out


def toy_pairs(labels: str) -> list[dict]:
    """One pair per label letter: the chosen text "good", the rejected "bad", in the labelled slot."""
    return [
        {
            "id": f"t{i}",
            "query": "q",
            "exemplars": ["e"],
            "label": label,
            "response_a": "good" if label == "a" else "bad",
            "response_b": "bad" if label == "a" else "good",
        }
        for i, label in enumerate(labels)
    ]


def overall(results) -> dict:
    from persrm_lib.evaluate.metrics import metric_row

    return metric_row(results, n_bootstrap=10)


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        # both orders: the two score pairs average to a tie on every pair (wrong), never right in both
        # orders, every parsed verdict prefers A, and the scores always follow its own eval
        (
            "both",
            {
                "accuracy": 0.0,
                "order_consistent_accuracy": 0.0,
                "a_preference": 1.0,
                "consistency": 0.0,
                "reasoning_agreement": 1.0,
                "format": 1.0,
            },
        ),
        # as written: right exactly on the pairs labelled A (half of them); nothing to be consistent about
        (
            "original",
            {
                "accuracy": 0.5,
                "order_consistent_accuracy": None,
                "a_preference": 1.0,
                "consistency": None,
                "reasoning_agreement": 1.0,
                "format": 1.0,
            },
        ),
    ],
)
def test_a_judge_that_always_answers_a(orders: str, expected: dict) -> None:
    judge = ScriptedJudge({"good": 2.0, "bad": 2.0}, bias=6.0, name="always-a")  # [8, 2] whatever it reads
    results = evaluate_pairs(judge, toy_pairs("abab"), orders=orders)
    found = overall(results)
    for name, value in expected.items():
        assert (found[name] != found[name]) if value is None else found[name] == value, name
    if orders == "both":
        assert results[["s_a", "s_b"]].values.tolist() == [[5.0, 5.0]] * 4
        assert results["original_s_a"].tolist() == results["swapped_s_a"].tolist() == [8.0] * 4
    else:
        assert results["swapped_format_ok"].isna().all() and results["swapped_completion"].isna().all()


def test_averaging_both_orders_removes_a_position_bias() -> None:
    # A in slot A gets +2: as written the judge is right only on pairs labelled A; averaged, always right
    judge = ScriptedJudge({"good": 6.0, "bad": 5.0}, bias=2.0)
    results = evaluate_pairs(judge, toy_pairs("ab"), orders="both")
    # pair t0 (good in A): original [8, 5], swapped [7, 6] -> good (6 + 8) / 2 = 7, bad (5 + 7) / 2 = 6
    # pair t1 (bad in A): original [7, 6], swapped [8, 5] -> bad (7 + 5) / 2 = 6, good (6 + 8) / 2 = 7
    assert results[["s_a", "s_b", "preferred", "correct"]].values.tolist() == [
        [7.0, 6.0, "a", True],
        [6.0, 7.0, "b", True],
    ]
    assert results[["original_preferred", "swapped_preferred"]].values.tolist() == [["a", "a"], ["a", "a"]]
    found = overall(results)
    assert (found["accuracy"], found["order_consistent_accuracy"], found["a_preference"]) == (1.0, 0.0, 1.0)


def test_a_violation_in_either_order_makes_the_averaged_verdict_a_violation() -> None:
    judge = ScriptedJudge({"good": 6.0, "bad": 5.0}, bias=0.0, broken=("bad",))  # breaks when "bad" is in slot A
    results = evaluate_pairs(judge, toy_pairs("ab"), orders="both")
    # t0: original parses ([6, 5]), swapped breaks; t1: original breaks, swapped parses
    assert results[["format_ok", "original_format_ok", "swapped_format_ok"]].values.tolist() == [
        [False, True, False],
        [False, False, True],
    ]
    assert results["preferred"].isna().all() and not results["correct"].any()
    found = overall(results)
    assert (found["accuracy"], found["format"], found["a_preference"]) == (0.0, 0.5, 1.0)  # both parsed say A


def test_position_invariant_judges_are_unchanged_by_averaging() -> None:
    judge = make_judge("char-ngram").fit(make_pairs(8))
    pairs = make_pairs(16)[8:]
    both = evaluate_pairs(judge, pairs, n_exemplars=1, orders="both")
    original = evaluate_pairs(judge, pairs, n_exemplars=1, orders="original")
    assert both[["s_a", "s_b", "preferred"]].values.tolist() == original[["s_a", "s_b", "preferred"]].values.tolist()
    assert both["s_a"].tolist() == both["original_s_a"].tolist()  # exactly: (x + x) / 2 == x


def test_orders_must_be_both_or_original() -> None:
    with pytest.raises(ValueError, match="orders must be one of both, original, got 'swapped'"):
        evaluate_pairs(make_judge("random"), make_pairs(2), orders="swapped")


def test_too_long_pairs_are_counted_and_left_out_of_the_rates(capsys, tmp_path: Path, tiny_model_dir) -> None:
    from persrm_lib.core.prompt import build_prompt_text
    from persrm_lib.models.context import count_tokens
    from persrm_lib.models.registry import load_model

    pairs = make_pairs(3)
    pairs[1] = {**pairs[1], "id": "long-b", "response_b": " ".join(["harvest"] * 6000)}
    path = write_pairs(pairs, tmp_path / "pairs.jsonl")
    argv = ["--pairs", path, "--judge", "generative", "--model", "tiny-random", "--max-new-tokens", "4"]
    code, out, err = run_cli(capsys, [*argv, "--n-exemplars", "1", "--count-too-long", "--out", tmp_path / "r.json"])
    assert code == 0, err
    assert out[-1] == (  # two pairs judged (a random model: no format), one counted apart
        "accuracy=0.000 n=2 format=0.00 order_consistent=0.000 a_preference=nan reasoning=nan too_long=1 "
        "judge=generative"
    )
    document = json.loads((tmp_path / "r.json").read_text())
    assert [r["too_long"] for r in document["results"]] == [False, True, False]
    assert document["results"][1]["completion"] is None  # nothing generated for it
    assert document["judge"]["n_too_long"] == 2  # its prompt in both orders
    _, tokenizer = load_model("tiny-random")
    assert count_tokens(tokenizer, [build_prompt_text(tokenizer, pairs[1], 1)])[0] > 4092  # indeed over the budget


def test_strip_think_flag_counts_stripped_outputs(capsys, files, monkeypatch, tiny_model_dir) -> None:
    from persrm_lib.core.output_format import render_output
    from persrm_lib.models.generation import GenerationResult

    answer = "<think>A reads like the exemplars.</think>\n" + render_output("c", "A is closer to the author.", (8, 2))

    def fake_generate(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, stop_when=None):
        assert stop_when is None  # the judge stops early only when told (stop_unparsable)
        n = len(prompts)
        return GenerationResult([answer] * n, [5] * n, [10] * n, 0.1, batch_size)

    monkeypatch.setattr("persrm_lib.models.client.generate", fake_generate)
    argv = ["--pairs", files["test"], "--judge", "generative", "--model", "tiny-random", "--limit", "2"]
    code, out, err = run_cli(capsys, [*argv, "--n-exemplars", "1", "--strip-think", "--out", files["out"]])
    assert code == 0, err
    # always [8, 2]: averaged ties; both orders parse and prefer A, as the eval says
    assert out[-1] == (
        "accuracy=0.000 n=2 format=1.00 order_consistent=0.000 a_preference=1.00 reasoning=1.00 too_long=0 "
        "judge=generative"
    )
    assert json.loads(files["out"].read_text())["judge"]["n_stripped"] == 4  # 2 pairs x 2 orders
    code, _, err = run_cli(
        capsys, ["--pairs", files["test"], "--judge", "random", "--strip-think", "--out", files["out"]]
    )
    assert code == 2 and "--strip-think applies to --judge generative only, not random" in err
    code, _, err = run_cli(capsys, [*argv, "--strip-think", "--stop-unparsable", "--out", files["out"]])
    assert code == 2 and "--stop-unparsable and --strip-think exclude each other" in err
    code, _, err = run_cli(
        capsys, ["--pairs", files["test"], "--judge", "char-ngram", "--stop-unparsable", "--out", files["out"]]
    )
    assert code == 2 and "--stop-unparsable applies to --judge generative only, not char-ngram" in err


def test_benchmark_name() -> None:
    assert benchmark_name("x/test_sotu.jsonl") == "sotu"
    assert benchmark_name("x/test_.jsonl") == "test_"
    assert benchmark_name("pairs.jsonl") == "pairs"


def test_module_entry_point(tmp_path: Path, files) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "persrm_lib.evaluate",
            "--pairs",
            str(files["test"]),
            "--judge",
            "random",
            "--out",
            str(files["out"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert SUMMARY.match(ok.stdout.strip().splitlines()[-1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good_line() + "\nnot json\n")
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "persrm_lib.evaluate",
            "--pairs",
            str(bad),
            "--judge",
            "random",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert failed.returncode == 2
    assert "bad.jsonl line 2: malformed JSON" in failed.stderr


def test_suite_skips_a_stage_without_adapter_and_writes_completions(tmp_path: Path, tiny_model_dir) -> None:
    from eval_fixtures import make_run

    from persrm_lib.core.config import get_profile
    from persrm_lib.evaluate.records import EVAL_COMPLETION_FIELDS, read_eval_completions
    from persrm_lib.evaluate.suite import run_suite

    run = make_run(tmp_path, adapters=("sft",), with_logs=False)
    profile = get_profile("tiny", {"evaluation.model_pairs": 1, "evaluation.generative_pairs": 1})
    suite = run_suite(run, profile, judges=["random", "char-ngram"], progress=False)
    assert any(
        n.startswith("stage rft: no adapter at") and n.endswith("skipped (run 04_rft_grpo)") for n in suite.notes
    )
    assert list(dict.fromkeys(suite.results["judge"])) == ["random", "char-ngram", "rm-base", "rm-sft"]
    counts = suite.results.groupby("judge").size().to_dict()
    assert counts == {"random": 16, "char-ngram": 16, "rm-base": 2, "rm-sft": 2}  # 8 + 8 test pairs; 1 + 1 generated
    assert [p.name for p in suite.completion_files] == ["base.jsonl", "sft.jsonl"]
    by_stage, notes = read_eval_completions(run)  # what 07_behavior_analysis reads
    assert {stage: len(rows) for stage, rows in by_stage.items()} == {"base": 4, "sft": 4}  # both orders
    assert [n.split(":")[0] for n in notes] == ["no rft completions"]
    first = by_stage["sft"][0]
    assert tuple(first) == EVAL_COMPLETION_FIELDS
    assert (first["stage"], first["order"], first["model"]) == ("sft", "original", "tiny-random")
    assert [r["order"] for r in by_stage["sft"]] == ["original", "swapped"] * 2


def test_suite_without_training_pairs_skips_fitted_judges(tmp_path: Path) -> None:
    from eval_fixtures import make_run

    from persrm_lib.core import runfiles
    from persrm_lib.core.config import get_profile
    from persrm_lib.evaluate.suite import run_suite

    run = make_run(tmp_path, adapters=(), with_logs=False)
    runfiles.pairs_path(run, "train").unlink()
    suite = run_suite(run, get_profile("tiny"), judges=["random", "char-ngram"], stages=[], progress=False)
    assert sorted(set(suite.results["judge"])) == ["random"]
    assert any("judge char-ngram:" in n and "cannot be fitted; skipped" in n for n in suite.notes)


def test_suite_skips_lambdag_when_the_training_set_is_too_small_for_its_references(tmp_path: Path) -> None:
    from eval_fixtures import make_run

    from persrm_lib.core.config import get_profile
    from persrm_lib.evaluate.suite import run_suite

    run = make_run(tmp_path, adapters=(), with_logs=False)  # 8 training pairs: too few reference sentences
    suite = run_suite(run, get_profile("tiny"), judges=["char-ngram", "lambdag"], stages=[], progress=False)
    assert sorted(set(suite.results["judge"])) == ["char-ngram"]
    skipped = [n for n in suite.notes if n.startswith("judge lambdag: lambdag: pair ")]
    assert len(skipped) == 1 and skipped[0].endswith(
        "fewer than the 6 sentences of its exemplars: fit on more training pairs; skipped"
    )


def test_suite_without_test_pairs(tmp_path: Path) -> None:
    from persrm_lib.core.config import get_profile
    from persrm_lib.evaluate.suite import run_suite

    with pytest.raises(FileNotFoundError, match="no test pairs under .* for sotu, aaac: run 01_synthesize first"):
        run_suite(tmp_path, get_profile("tiny"), judges=["random"], stages=[])


def test_write_tables_saves_csv_and_markdown(tmp_path: Path) -> None:
    import pandas as pd

    from persrm_lib.evaluate.records import PER_PAIR_FIELDS, read_per_pair
    from persrm_lib.evaluate.tables import write_tables

    judge = make_judge("char-ngram").fit(make_pairs(8))
    frames = [
        evaluate_pairs(judge, make_pairs(16)[8:], k, benchmark=bench).assign(judge="char-ngram", stage="baseline")
        for bench in ("sotu", "aaac")
        for k in (1, 2)
    ]
    tables = write_tables(pd.concat(frames, ignore_index=True), tmp_path, main_k=2, n_bootstrap=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{t}.{ext}" for t in tables for ext in ("csv", "md")] + ["per_pair.csv"]
    )
    assert tables["accuracy_by_benchmark"].columns.tolist() == ["aaac", "sotu"]
    assert tables["accuracy_by_exemplars"].columns.tolist() == [1, 2]
    assert sorted(tables["accuracy_by_negative_kind"].columns) == ["cross_author", "random"]
    markdown = (tmp_path / "accuracy_by_benchmark.md").read_text().splitlines()
    assert markdown[0] == "| judge | aaac | sotu |" and markdown[1] == "|---|---|---|"
    assert markdown[2].startswith("| char-ngram | ")
    per_pair = read_per_pair(tmp_path / "per_pair.csv")
    assert len(per_pair) == 32 and "completion" not in per_pair.columns
    assert tuple(per_pair.columns) == PER_PAIR_FIELDS
    summary = tables["summary"]
    assert summary.query("breakdown == 'overall'")["n"].tolist() == [32]


def test_plot_accuracy_bars_draws_one_bar_per_judge_and_benchmark() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib import pyplot as plt

    from persrm_lib.evaluate.tables import plot_accuracy_bars

    table = pd.DataFrame(
        {
            "judge": ["a", "a", "b"],  # judge b was evaluated on one benchmark only
            "benchmark": ["sotu", "aaac", "sotu"],
            "accuracy": [0.75, 0.5, 0.0],
            "ci_low": [0.5, 0.25, 0.0],
            "ci_high": [1.0, 0.75, 0.0],
        }
    )
    fig, ax = plt.subplots()
    plot_accuracy_bars(table, ["a", "b", "c"], ax)
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert heights == [0.0, 0.5, 0.75]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.50", "0.75"]  # value labels, zero bars too
    plt.close(fig)


# ---- records: one writer and one reader per file ----------------------------------------------


def completion_record(stage: str = "sft", **changes) -> dict:
    from persrm_lib.evaluate.records import EVAL_COMPLETION_FIELDS

    record = dict.fromkeys(EVAL_COMPLETION_FIELDS)
    record.update(id="p:1:original", pair_id="p", stage=stage, order="original", label="a", completion="x")
    record.update(changes)
    return record


def test_eval_completions_round_trip(tmp_path: Path) -> None:
    from persrm_lib.core import runfiles
    from persrm_lib.evaluate.records import read_eval_completions, write_eval_completions

    path = write_eval_completions(
        tmp_path, "rft", [completion_record("rft"), completion_record("rft", order="swapped")]
    )
    assert path == runfiles.eval_completions_path(tmp_path, "rft") == tmp_path / "eval" / "completions" / "rft.jsonl"
    by_stage, notes = read_eval_completions(tmp_path)
    assert [r["order"] for r in by_stage["rft"]] == ["original", "swapped"]
    assert sorted(by_stage) == ["rft"]
    assert [n.split(":")[0] for n in notes] == ["no base completions", "no sft completions"]


@pytest.mark.parametrize(
    ("stage", "records", "message"),
    [
        ("final", [], "unknown stage 'final'; choose from base, sft, rft"),  # not a reward-model stage
        ("sft", [completion_record("rft")], "stage 'rft' written to the 'sft' file"),  # another stage's record
        ("sft", [{"pair_id": "p", "completion": "x"}], "completion record 0: fields"),  # not the fixed fields
    ],
)
def test_write_eval_completions_refuses(tmp_path: Path, stage: str, records: list, message: str) -> None:
    from persrm_lib.evaluate.records import write_eval_completions

    with pytest.raises(ValueError, match=re.escape(message)):
        write_eval_completions(tmp_path, stage, records)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        # a record without its stage field
        (
            [json.dumps({k: v for k, v in completion_record().items() if k != "stage"})],
            r"sft\.jsonl line 1: fields are not the evaluation completion fields \(missing: stage; unexpected: none\)",
        ),
        # a record of another stage in the sft file
        ([json.dumps(completion_record("base"))], r"sft\.jsonl line 1: stage 'base' in the 'sft' file"),
        # a torn line
        ([json.dumps(completion_record()), '{"id": '], r"sft\.jsonl line 2: malformed JSON"),
    ],
)
def test_read_eval_completions_names_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    from persrm_lib.core import runfiles
    from persrm_lib.evaluate.records import read_eval_completions

    path = runfiles.eval_completions_path(tmp_path, "sft")
    path.parent.mkdir(parents=True)
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(ValueError, match=message):
        read_eval_completions(tmp_path)


def test_read_eval_completions_of_an_empty_run(tmp_path: Path) -> None:
    from persrm_lib.evaluate.records import read_eval_completions

    by_stage, notes = read_eval_completions(tmp_path)
    assert by_stage == {}
    assert len(notes) == 3 and all("is absent (run 05_evaluate)" in n for n in notes)


def test_read_per_pair_refuses_other_columns(tmp_path: Path) -> None:
    from persrm_lib.evaluate.records import read_per_pair

    path = tmp_path / "per_pair.csv"
    path.write_text("id,judge,extra\n1,random,x\n")
    with pytest.raises(ValueError, match=r"per_pair\.csv: columns are not the per-pair fields \(missing: benchmark, "):
        read_per_pair(path)
    with pytest.raises(FileNotFoundError, match="run 05_evaluate first"):
        read_per_pair(tmp_path / "none.csv")


def test_completion_records_of_a_stage() -> None:
    from persrm_lib.evaluate.records import completion_records

    judge = make_judge("char-ngram").fit(make_pairs(8))
    frame = evaluate_pairs(judge, make_pairs(10)[8:], 1, benchmark="toy")
    frame["completion"] = ["c0", "c1"]
    frame["swapped_completion"] = ["s0", None]  # the second pair was not judged swapped
    records = completion_records(frame, "base", "tiny-random")
    assert [(r["id"], r["label"], r["completion"]) for r in records] == [
        ("pair-08:1:original", "a", "c0"),
        ("pair-08:1:swapped", "b", "s0"),
        ("pair-09:1:original", "b", "c1"),
    ]
    assert [r["correct"] for r in records] == [True, True, True]  # the stylometric judge is right on all three


@pytest.mark.parametrize(
    ("persona_pairs", "benchmark", "expected"),
    [
        (16, "personas", 16),  # the persona cap where it is set
        (0, "personas", 6),  # unset: the generative cap
        (16, "sotu", 6),  # other benchmarks: always the generative cap
    ],
)
def test_generative_limit_chooses_the_cap_05_uses(persona_pairs: int, benchmark: str, expected: int) -> None:
    from persrm_lib.core.config import EvaluationSettings
    from persrm_lib.evaluate.suite import generative_limit

    settings = EvaluationSettings(generative_pairs=6, persona_generative_pairs=persona_pairs)
    assert generative_limit(settings, benchmark) == expected


def test_judged_pairs_filters_by_exemplar_count_then_draws_with_the_seed() -> None:
    from persrm_lib.evaluate.suite import judged_pairs

    pairs = make_pairs(6, n_exemplars=1) + make_pairs(10, n_exemplars=3)[6:]  # ids 00-05 with 1 exemplar, 06-09 with 3
    assert [p["id"] for p in judged_pairs(pairs, 3, 0, 0)] == ["pair-06", "pair-07", "pair-08", "pair-09"]
    drawn = judged_pairs(pairs, 1, 3, 7)
    assert [p["id"] for p in drawn] == [p["id"] for p in select_pairs(pairs, 3, 7)]
    assert len(drawn) == 3
    assert judged_pairs(pairs, 4, 0, 0) == []  # no pair has 4 exemplars
