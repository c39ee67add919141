"""Notebook 01_synthesize end to end (profile device: sotu and aaac, pairwise) through the runner, in a temporary run folder.

Checks what 02-05 rely on: the pair sets exist in both formats with the profile's sizes, the splits
are author-disjoint, position is balanced, the traces cover the training pairs, and the recorded
metrics are the library's numbers on the written files. The metrics cell itself is one library call,
:func:`persrm_lib.data.synthesis.headline_metrics`, checked here on a small hand-made input.

The run has RM-R1's hinted second pass on (``teacher.hinted_share``), and 02 runs after 01, so both
notebooks' hinted branches run: the rewrites are the first wrong traces up to the cap, tagged, and
02's SFT set holds the faithful ones within the cap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from persrm_lib.core import runfiles
from persrm_lib.core.config import get_profile
from persrm_lib.core.jsonl import read_jsonl
from persrm_lib.core.paths import REPO_ROOT
from persrm_lib.data.documents import read_documents
from persrm_lib.data.leaks import label_shortcut_report
from persrm_lib.data.pairs import read_pairs
from persrm_lib.data.synthesis import headline_metrics
from persrm_lib.run.runner import run_notebooks
from persrm_lib.teachers.hinted import select_for_hint
from persrm_lib.teachers.llm import make_teacher


@pytest.mark.slow
def test_notebook_01_on_sotu_and_aaac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """01 and 02 of the device profile (what the GPU check stages): real authors, the stylometric
    teacher, pairwise traces and RM-R1's hinted pass."""
    from datasets import load_from_disk

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    run = tmp_path / "run"
    share = 0.25
    run_notebooks("device", run, only=["01", "02"], log=lambda line: None, settings={"teacher.hinted_share": share})
    cfg = get_profile("device", {"teacher.hinted_share": share})
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
    # the hinted pass: the first wrong traces up to the cap, tagged; 02 keeps the faithful ones, capped
    rewrites = read_jsonl(runfiles.hinted_traces_path(run))
    teacher = make_teacher(cfg.teacher)
    teacher.prepare(pairs["train"])  # as the notebook's blind pass did
    expected = select_for_hint(traces, share, cfg.teacher.strip_think, teacher.can_hint)
    assert [t["id"] for t in rewrites] == [p["id"] for p in expected]
    assert rewrites and all(t["hinted"] is True and t["teacher"].endswith("+hint") for t in rewrites)
    kept = read_jsonl(runfiles.faithful_traces_path(run))
    audit = json.loads((run / "metrics" / "02_filter_audit.json").read_text())
    n_hinted = sum(bool(t.get("hinted")) for t in kept)
    assert n_hinted == audit["n_hinted_kept"] <= sum(t["faithful"] for t in rewrites)
    assert audit["n_kept"] == len(kept) and audit["n_hinted_written"] == len(rewrites)
    assert audit["hinted_share"] == pytest.approx(n_hinted / len(kept))
    assert 0 < audit["hinted_share"] <= share
    assert (run / "figures" / "01_pairs.png").stat().st_size > 1000


def small_checks() -> pd.DataFrame:
    """The leak-check table as notebook 01 builds it: one row per set, ``n_pairs``, the predictors and the
    topic judge per negative kind (NaN where a set lacks the kind)."""
    rows = [
        {
            "set": "train",
            "n_pairs": 3.0,
            "position_a": 1 / 3,
            "query_overlap": 0.5,
            "topic_judge/random": 0.5,
            "topic_judge/same_era": 1.0,
        },
        {
            "set": "test_sotu",
            "n_pairs": 2.0,
            "position_a": 0.5,
            "query_overlap": 0.25,
            "topic_judge/random": 0.75,
            "topic_judge/same_era": float("nan"),
        },
    ]
    return pd.DataFrame(rows).set_index("set")


def test_headline_metrics_is_the_dict_the_notebook_recorded() -> None:
    documents = pd.DataFrame({"author": ["lincoln", "lincoln", "grant", "polk"], "text": ["w", "x", "y", "z"]})
    pair_sets = {"train": [{}, {}, {}], "test_sotu": [{}, {}]}  # only the counts are read
    metrics = headline_metrics(documents, pair_sets, small_checks(), 58, 3, 2)
    # the same keys, in the same order, with the same values as the cell it replaced
    assert list(metrics.items()) == [
        ("n_documents", 4),
        ("n_authors", 3),
        ("response_words", 58),
        ("n_traces", 3),
        ("teacher_agreement", 2 / 3),
        ("n_pairs/train", 3),
        ("n_pairs/test_sotu", 2),
        ("shortcut/train/position_a", 1 / 3),
        ("shortcut/train/query_overlap", 0.5),
        ("shortcut/train/topic_judge/random", 0.5),
        ("shortcut/train/topic_judge/same_era", 1.0),
        ("shortcut/test_sotu/position_a", 0.5),
        ("shortcut/test_sotu/query_overlap", 0.25),
        ("shortcut/test_sotu/topic_judge/random", 0.75),
        # no test_sotu/topic_judge/same_era: the set has no same-era pair (NaN)
    ]
    assert [type(metrics[k]) for k in ("n_documents", "n_authors", "shortcut/train/position_a")] == [int, int, float]


def test_headline_metrics_without_traces_is_refused() -> None:
    with pytest.raises(
        ValueError, match="^no teacher traces: notebook 01 records the teacher's agreement over at least one trace$"
    ):
        headline_metrics(pd.DataFrame({"author": ["x"]}), {}, small_checks(), 58, 0, 0)
