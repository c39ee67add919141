"""Notebook 01_synthesize end to end (profile smoke) through the runner, in a temporary run folder.

Checks what 02-05 rely on: the pair sets exist in both formats with the profile's sizes, the splits
are author-disjoint, position is balanced, the traces cover the training pairs, and the recorded
metrics are the library's numbers on the written files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from persrm_lib.core import runfiles
from persrm_lib.core.config import get_profile
from persrm_lib.core.jsonl import read_jsonl
from persrm_lib.core.paths import REPO_ROOT
from persrm_lib.data.documents import read_documents
from persrm_lib.data.leaks import label_shortcut_report
from persrm_lib.data.pairs import read_pairs
from persrm_lib.run.runner import run_notebooks


@pytest.mark.slow
def test_notebook_01_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datasets import load_from_disk

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    run = tmp_path / "run"
    run_notebooks("smoke", run, only=["01"], log=lambda line: None)
    cfg = get_profile("smoke")
    metrics = json.loads((run / "metrics" / "01_synthesize.json").read_text())

    sets = ["train", "validation"] + [f"test_{b}" for b in cfg.data.benchmarks]
    expected = {"train": cfg.data.train_pairs, "validation": cfg.data.eval_pairs}
    pairs = {}
    for name in sets:
        pairs[name] = read_pairs(runfiles.pairs_path(run, name))
        assert len(pairs[name]) == expected.get(name, cfg.data.eval_pairs) == metrics[f"n_pairs/{name}"]
        assert len(load_from_disk(str(runfiles.pairs_hf_dir(run, name)))) == len(pairs[name])
        # the metrics are the library's shortcut numbers on the written file; position is balanced
        report = label_shortcut_report(pairs[name])
        assert metrics[f"shortcut/{name}/position_a"] == pytest.approx(report["position_a"])
        # balanced within each benchmark's strategies; each benchmark may leave one spare pair
        n_a = sum(p["label"] == "a" for p in pairs[name])
        assert abs(2 * n_a - len(pairs[name])) <= len(cfg.data.benchmarks), (name, n_a)
        assert metrics[f"shortcut/{name}/longer_wins_words"] == 0.5  # equal word budgets
    # exemplar counts: the profile's for training, the largest evaluated count for tests
    assert {p["n_exemplars"] for p in pairs["train"]} == {cfg.data.n_exemplars}
    assert {p["n_exemplars"] for p in pairs[f"test_{cfg.data.benchmarks[0]}"]} == {max(cfg.data.eval_exemplar_counts)}
    # author-disjoint: no test author in training pairs
    train_authors = {p["author"] for p in pairs["train"]}
    for name in sets[1:]:
        assert not train_authors & {p["author"] for p in pairs[name]}, name
    docs = read_documents(runfiles.documents_path(run))
    assert len(docs) == metrics["n_documents"] and (docs.groupby("author")["split"].nunique() == 1).all()
    traces = read_jsonl(runfiles.traces_path(run))
    assert [t["id"] for t in traces] == [p["id"] for p in pairs["train"]] and len(traces) == metrics["n_traces"]
    assert metrics["teacher_agreement"] == pytest.approx(sum(t["faithful"] for t in traces) / len(traces))
    assert (run / "figures" / "01_pairs.png").stat().st_size > 1000
