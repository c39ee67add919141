"""The capacity probe (benchmarks/capacity_probe.py) on the tiny profile: it trains through the
project's SFT, judges in both orders and records what it measured, with and without the evidence
table in the prompt; a trace probe without evidence is refused."""

from __future__ import annotations

import importlib.util
import json

import pytest
from eval_fixtures import make_run

from persrm_lib.core.paths import REPO_ROOT


def load_probe():
    spec = importlib.util.spec_from_file_location("capacity_probe", REPO_ROOT / "benchmarks" / "capacity_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("evidence", ["none", "stylometric"])
def test_verdict_probe_records_its_settings_and_both_order_metrics(tmp_path, evidence):
    run = make_run(tmp_path, adapters=(), with_logs=False)
    out = tmp_path / "probe.json"
    argv = ["--run-dir", str(run), "--probe", "verdict", "--profile", "tiny", "--train-pairs", "4"]
    argv += ["--test-pairs", "2", "--epochs", "1", "--lora-r", "4", "--max-new-tokens", "8", "--out", str(out)]
    assert load_probe().main([*argv, "--evidence", evidence]) == 0
    record = json.loads(out.read_text())
    assert (record["probe"], record["evidence"], record["train_pairs"], record["sft_examples"]) == (
        "verdict",
        evidence,
        4,
        8,  # every trace in both orders
    )
    assert sorted(record["benchmarks"]) == ["aaac", "sotu"]
    sotu = record["benchmarks"]["sotu"]
    assert sotu["n"] == 2 and sotu["format"] == 0.0  # eight new tokens cannot hold the format
    assert sotu["order_consistent_accuracy"] == 0.0 and sotu["a_preference"] is None
    # with evidence the adapter records prompt.evidence=stylometric and the judge refuses test pairs
    # without the table (issue 12 item 4): judging them to the end shows they carried it
    assert record["sft_steps"] >= 1 and record["threads"] == 1


def test_trace_probe_without_evidence_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_probe().main(
            ["--run-dir", str(tmp_path), "--probe", "trace", "--evidence", "none", "--out", str(tmp_path / "x.json")]
        )
    assert "needs --evidence stylometric" in capsys.readouterr().err
