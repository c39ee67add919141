from __future__ import annotations

import json

import pytest
from run_fixtures import write_executed

from persrm_lib.run import regression
from persrm_lib.run.notebook import flatten
from persrm_lib.run.regression import collect, compare, format_table, tolerance_for

RULES = [("*seconds*", None), ("05_evaluate:accuracy*", {"abs": 0.02}), ("*", {"abs": 0.0, "rel": 0.0})]


def test_flatten_nests_with_dots():
    assert flatten({"a": 1, "b": {"c": 2.5, "d": {"e": "x"}}}) == {"a": 1, "b.c": 2.5, "b.d.e": "x"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("03_sft:train_seconds", None),  # timings are not compared
        ("05_evaluate:accuracy.sotu", {"abs": 0.02}),  # a specific rule
        ("02_filter_audit:kept_fraction", {"abs": 0.0, "rel": 0.0}),  # falls through to the default
    ],
)
def test_first_matching_rule_wins(key, expected):
    assert tolerance_for(key, RULES) == expected


def test_compare_reports_each_status():
    stored = {
        "05_evaluate": {"accuracy.sotu": 0.70, "accuracy.aaac": 0.60, "n": 24, "train_seconds": 9.0},
        "01": {"gone": 1},
    }
    measured = {
        "05_evaluate": {"accuracy.sotu": 0.715, "accuracy.aaac": 0.65, "n": 24, "train_seconds": 20.0, "extra": 3}
    }
    rows = {r.key: r.status for r in compare(stored, measured, RULES)}
    assert rows == {
        "05_evaluate:accuracy.sotu": "ok",  # moved 0.015 <= 0.02
        "05_evaluate:accuracy.aaac": "moved",  # moved 0.05 > 0.02
        "05_evaluate:n": "ok",  # identical
        "05_evaluate:train_seconds": "ignored",  # timing
        "05_evaluate:extra": "new",  # not stored yet
        "01:gone": "missing",  # stored but no longer recorded
    }
    table = format_table(compare(stored, measured, RULES))
    assert "05_evaluate:accuracy.aaac" in table and "moved" in table
    assert "accuracy.sotu" not in table  # only what moved is printed


def test_cli_fails_when_a_metric_moved_too_far(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "05_evaluate.json").write_text(json.dumps({"accuracy": {"sotu": 0.7}}))
    write_executed(run, "tiny")  # tiny does not train on personas: no learning gate here
    monkeypatch.setattr(regression, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(regression, "stored_path", lambda p: tmp_path / "results" / p / "metrics.json")
    assert regression.main(["--profile", "tiny", "--run-dir", str(run), "--skip-run"]) == 1
    assert "no stored metrics" in capsys.readouterr().err
    assert regression.main(["--profile", "tiny", "--run-dir", str(run), "--skip-run", "--update"]) == 0
    assert regression.main(["--profile", "tiny", "--run-dir", str(run), "--skip-run"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "regression: ok=1 moved=0 missing=0 new=0 ignored=0"
    (run / "metrics" / "05_evaluate.json").write_text(json.dumps({"accuracy": {"sotu": 0.5}}))
    assert regression.main(["--profile", "tiny", "--run-dir", str(run), "--skip-run"]) == 1
    assert "moved" in capsys.readouterr().out


def test_collect_needs_a_metrics_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no metrics"):
        collect(tmp_path)


def test_cli_refuses_a_run_of_another_profile(tmp_path, monkeypatch, capsys):
    """A smoke run is never compared with, or stored as, the cpu reference."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "05_evaluate.json").write_text(json.dumps({"accuracy": 0.5}))
    write_executed(run, "smoke")
    stored = tmp_path / "results" / "cpu" / "metrics.json"
    stored.parent.mkdir(parents=True)
    stored.write_text('{"05_evaluate": {"accuracy": 0.9}}')
    monkeypatch.setattr(regression, "stored_path", lambda p: tmp_path / "results" / p / "metrics.json")
    # refused: exit status 2 (1 means a metric moved)
    assert regression.main(["--profile", "cpu", "--run-dir", str(run), "--skip-run", "--update"]) == 2
    assert "was run with profile 'smoke', not 'cpu'" in capsys.readouterr().err
    assert stored.read_text() == '{"05_evaluate": {"accuracy": 0.9}}'  # untouched


def test_a_run_that_trains_on_personas_and_did_not_learn_fails_and_is_never_stored(tmp_path, monkeypatch, capsys):
    """The learning gate: SFT must beat base on held-out personas (05's goal) in a profile that trains
    on them, whatever the stored reference says; --update refuses such a run."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    write_executed(run, "cpu")
    monkeypatch.setattr(regression, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(regression, "stored_path", lambda p: tmp_path / "results" / p / "metrics.json")
    args = ["--profile", "cpu", "--run-dir", str(run), "--skip-run"]
    for recorded, why in ((False, "not met"), (None, "not recorded")):
        metrics = {"accuracy_rm_sft": 0.5, **({} if recorded is None else {regression.LEARNING_GOAL: recorded})}
        (run / "metrics" / "05_evaluate.json").write_text(json.dumps(metrics))
        assert regression.main([*args, "--update"]) == 2
        err = capsys.readouterr().err
        assert "--update refused: learning gate: profile 'cpu' trains on personas" in err and why in err
        assert not (tmp_path / "results").exists()  # nothing stored
    (run / "metrics" / "05_evaluate.json").write_text(
        json.dumps({"accuracy_rm_sft": 0.5, regression.LEARNING_GOAL: True})
    )
    assert regression.main([*args, "--update"]) == 0 and regression.main(args) == 0
    # a run that matches the stored metrics exactly still fails when it did not learn (a stored
    # reference made before the gate, or edited by hand)
    stored = tmp_path / "results" / "cpu" / "metrics.json"
    stored.write_text(json.dumps({"05_evaluate": {"accuracy_rm_sft": 0.5, regression.LEARNING_GOAL: False}}))
    (run / "metrics" / "05_evaluate.json").write_text(
        json.dumps({"accuracy_rm_sft": 0.5, regression.LEARNING_GOAL: False})
    )
    capsys.readouterr()
    assert regression.main(args) == 1
    captured = capsys.readouterr()
    assert "moved=0 missing=0" in captured.out and "the run did not learn" in captured.err


def test_the_learning_gate_leaves_profiles_that_do_not_train_on_personas_alone():
    assert regression.learning_problem({"05_evaluate": {}}, "paper") is None
    assert regression.learning_problem({"05_evaluate": {}}, "cpu", {"data.train_benchmarks": "sotu"}) is None
    assert "not recorded" in regression.learning_problem({}, "cpu")
