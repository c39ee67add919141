"""Runs side by side (python -m persrm_lib.evaluate.compare): judges renamed per run, each later run
compared with the first on the pairs both judged, accuracy and order-consistent accuracy."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from eval_fixtures import stage_rows

from persrm_lib.core import runfiles
from persrm_lib.evaluate import compare
from persrm_lib.evaluate.records import PER_PAIR_FIELDS, write_per_pair


def write_run(run, judge_verdicts: dict[str, dict[int, tuple[str, str]]], n_exemplars=(3,)) -> None:
    """judge -> pair id -> (original verdict, swapped verdict) on pairs labelled "a"."""
    rows = []
    for judge, verdicts in judge_verdicts.items():
        for k in n_exemplars:
            for row in stage_rows(judge, verdicts):
                rows.append(
                    dict.fromkeys(PER_PAIR_FIELDS)
                    | row
                    | {
                        "id": f"p{row['id']}",
                        "n_exemplars": k,
                        "stage": "sft" if judge.startswith("rm-") else "baseline",
                        "negative_kind": "random" if row["id"] % 2 else "same-era",
                    }
                )
    write_per_pair(pd.DataFrame(rows), runfiles.per_pair_path(run))


def test_a_later_run_is_compared_with_the_first_on_shared_pairs(tmp_path):
    write_run(tmp_path / "none", {"rm-sft": {i: ("a", "a") for i in range(8)}, "char-ngram": {0: ("a", "b")}})
    # the variant judged a nested subset (6 of the 8 pairs), right in both orders on all
    write_run(tmp_path / "evidence", {"rm-sft": {i: ("a", "b") for i in range(6)}}, n_exemplars=(1, 3))
    combined = compare.combine_runs({"none": tmp_path / "none", "evidence": tmp_path / "evidence"})
    assert set(combined["n_exemplars"]) == {3}  # the first run's largest count
    assert set(combined["judge"]) == {"rm-sft@none", "char-ngram@none", "rm-sft@evidence"}
    summary, paired = compare.compare_runs(combined, ["rm-sft", "char-ngram"], n_bootstrap=200)
    assert summary[["judge", "run", "n"]].values.tolist() == [
        ["rm-sft", "none", 8],
        ["rm-sft", "evidence", 6],
        ["char-ngram", "none", 1],
    ]
    assert summary.set_index("run").loc["none"].query("judge == 'rm-sft'")["a_preference"].item() == 1.0
    overall = paired[(paired["group"] == "all") & (paired["judge"] == "rm-sft")].set_index("measure")
    assert overall.loc["order_consistent", ["n", "model_accuracy", "baseline_accuracy"]].tolist() == [6, 1.0, 0.0]
    assert overall.loc["order_consistent", "diff_low"] == 1.0
    assert sorted(paired.loc[paired["measure"] == "accuracy", "group"]) == ["all", "random", "same-era"]
    assert set(paired["judge"]) == {"rm-sft"}  # char-ngram ran in the first run only: nothing to pair


def test_cli_writes_json_and_names_what_is_wrong(tmp_path, capsys):
    write_run(tmp_path / "a", {"rm-sft": {i: ("a", "a") for i in range(4)}})
    write_run(tmp_path / "b", {"rm-sft": {i: ("a", "b") for i in range(4)}})
    out = tmp_path / "cmp.json"
    code = compare.main(["--run", f"none={tmp_path / 'a'}", "--run", f"ev={tmp_path / 'b'}", "--out", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    assert document["exemplars"] == 3 and [r["run"] for r in document["summary"]] == ["none", "ev"]
    assert code == 0 and "written:" in capsys.readouterr().out
    assert compare.main(["--run", f"none={tmp_path / 'a'}", "--run", f"ev={tmp_path / 'missing'}"]) == 2
    assert f"no such run or results folder: {tmp_path / 'missing'}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert compare.main(["--run", f"none={tmp_path / 'a'}", "--run", f"ev={tmp_path / 'empty'}"]) == 2
    assert "per_pair.csv do not exist: run 05_evaluate first" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least two runs"):
        compare.combine_runs({"none": tmp_path / "a"})
    with pytest.raises(ValueError, match="contain no '@'"):
        compare.combine_runs({"a@b": tmp_path / "a", "c": tmp_path / "b"})
    assert compare.main(["--run", "no-label-here"]) == 2  # one line, exit status 2
    assert capsys.readouterr().err == (
        "python -m persrm_lib.evaluate.compare: error: argument --run: --run 'no-label-here': expected "
        "LABEL=RUN_FOLDER, e.g. none=runs/cpu\n"
    )


def test_a_published_results_folder_compares_like_its_run(tmp_path):
    write_run(tmp_path / "run", {"rm-sft": {i: ("a", "a") for i in range(4)}})
    published = tmp_path / "results" / "cpu" / "tables"
    published.mkdir(parents=True)
    (published / "eval_per_pair.csv").write_bytes(runfiles.per_pair_path(tmp_path / "run").read_bytes())
    write_run(tmp_path / "variant", {"rm-sft": {i: ("a", "b") for i in range(4)}})
    assert compare.per_pair_file(tmp_path / "results" / "cpu") == published / "eval_per_pair.csv"
    combined = compare.combine_runs({"none": tmp_path / "results" / "cpu", "ev": tmp_path / "variant"})
    _, paired = compare.compare_runs(combined, n_bootstrap=100)
    overall = paired[(paired["group"] == "all") & (paired["measure"] == "order_consistent")].iloc[0]
    assert (overall["n"], overall["difference"]) == (4, 1.0)
