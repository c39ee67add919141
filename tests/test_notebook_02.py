"""Notebook 02_filter_audit end to end on a fixture run folder (hand-made pairs + stylometric traces).

The fixture stands in for notebook 01's outputs: ``data/pairs/train.jsonl`` and
``data/traces.jsonl``. The notebook is executed with papermill (profile smoke), and its recorded
metrics are compared with the library's numbers computed here.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from persrm_lib.core import runfiles
from persrm_lib.core.jsonl import read_jsonl
from persrm_lib.data.pairs import write_pairs
from persrm_lib.run.runner import execute_notebook
from persrm_lib.teachers.filtering import (
    audit_metrics,
    audit_summary,
    check_against_pairs,
    faithfulness_by,
    faithfulness_filter,
)
from persrm_lib.teachers.stylometric import StylometricTeacher
from persrm_lib.teachers.traces import generate_traces

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_filter_audit.ipynb"

# Three hand-made "authors" with distinct habits: terse with semicolons, long-winded with commas,
# chatty with exclamations and questions. Passages are drawn from their phrase banks with a seed.
AUTHORS: dict[str, tuple[list[str], str]] = {
    "terse": (["we hold", "we act", "the line stands", "the work is done", "we keep faith", "the law holds"], "; "),
    "longwinded": (
        [
            "it is, in the considered judgement of this office, a matter of the gravest importance",
            "the people, who have borne so much, deserve nothing less than our fullest attention",
            "and so, with patience and with care, we must proceed",
            "for the Republic, which we all cherish, depends upon it",
        ],
        ", ",
    ),
    "chatty": (["so what now?", "we did it!", "can you believe it?", "wow, just wow!", "let's go!", "right?"], " "),
}


def passage(author: str, rng: random.Random, n: int) -> str:
    phrases, joiner = AUTHORS[author]
    parts = [rng.choice(phrases) for _ in range(n)]
    text = joiner.join(parts)
    return text[0].upper() + text[1:] + ("" if text.endswith(("!", "?")) else ".")


def fixture_pairs(n_pairs: int, seed: int = 0) -> list[dict[str, Any]]:
    """Pairs in the contract's format: exemplar and chosen by one author, rejected by another."""
    rng = random.Random(seed)
    names = sorted(AUTHORS)
    pairs = []
    for i in range(n_pairs):
        author = names[i % len(names)]
        other = names[(i + 1 + i // len(names)) % len(names)]
        if other == author:
            other = names[(i + 2) % len(names)]
        chosen, rejected = passage(author, rng, rng.randint(3, 6)), passage(other, rng, rng.randint(3, 6))
        label = rng.choice("ab")
        a, b = (chosen, rejected) if label == "a" else (rejected, chosen)
        pairs.append(
            {
                "id": f"train-{i:04d}",
                "query": "Write a short passage in your own voice.",
                "exemplars": [passage(author, rng, 6), passage(author, rng, 6)],
                "response_a": a,
                "response_b": b,
                "label": label,
                "positive_kind": "intra_author",
                "negative_kind": "random" if i % 2 else "cross_author",
                "author": author,
                "genre": "speech",
                "n_exemplars": 1,
            }
        )
    return pairs


def build_fixture_run(run: Path, n_pairs: int = 30, seed: int = 0) -> list[dict[str, Any]]:
    """Write the pairs and the stylometric teacher's traces where notebook 01 would."""
    pairs = fixture_pairs(n_pairs, seed)
    write_pairs(pairs, runfiles.pairs_path(run, "train"))
    generate_traces(pairs, StylometricTeacher(), runfiles.traces_path(run))
    return pairs


def test_fixture_run_has_a_teacher_that_is_sometimes_wrong(tmp_path: Path) -> None:
    build_fixture_run(tmp_path)
    result = faithfulness_filter(read_jsonl(runfiles.traces_path(tmp_path)))
    # a genuine judge: it agrees with most labels, not all
    assert 0.5 < result.kept_fraction < 1.0


@pytest.mark.parametrize(
    ("strip_think", "n_traced", "expected"),
    [
        (False, 6, {"n_pairs": 6, "n_pairs_without_trace": 0, "n_teachers": 1, "n_stripped": 0}),  # the default
        (False, 4, {"n_pairs": 6, "n_pairs_without_trace": 2, "n_teachers": 1, "n_stripped": 0}),  # 01 traced a subset
        (True, 6, {"n_pairs": 6, "n_pairs_without_trace": 0, "n_teachers": 1, "n_stripped": 1}),  # one think block
    ],
)
def test_audit_metrics_is_the_dict_the_notebook_recorded(
    tmp_path: Path, strip_think: bool, n_traced: int, expected: dict[str, int]
) -> None:
    """The metrics cell is one library call: audit_summary's numbers, the pair coverage, the teachers, and
    (issue 13, item 5) how many leading <think> blocks the filter stripped."""
    pairs = fixture_pairs(6)
    generate_traces(pairs[:n_traced], StylometricTeacher(), tmp_path / "traces.jsonl")
    traces = read_jsonl(tmp_path / "traces.jsonl")
    traces[0]["completion"] = "<think>A looks closer.</think>\n" + traces[0]["completion"]
    result = faithfulness_filter(traces, strip_think=strip_think)
    summary = audit_summary(result, n_splits=2)
    metrics = audit_metrics(result, summary, pairs, check_against_pairs(traces, pairs))
    kept = faithfulness_by(result, "benchmark")  # the teacher's agreement per benchmark, last
    agreement = {
        f"teacher_agreement/{b}": round(float(f), 4)
        for b, f in zip(kept["benchmark"], kept["kept_fraction"], strict=True)
    }
    assert list(agreement) == ["teacher_agreement/unknown"]  # fixture pairs name no benchmark
    assert agreement["teacher_agreement/unknown"] == round(sum(t["faithful"] for t in result.traces) / n_traced, 4)
    assert list(metrics.items()) == [*summary.items(), *expected.items(), *agreement.items()]


@pytest.mark.slow
def test_notebook_02_runs_on_a_fixture_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel runs in notebooks/; let it import persrm_lib whether or not the package is installed
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOK.parent.parent), os.environ.get("PYTHONPATH")]))
    )
    run = tmp_path / "run"
    build_fixture_run(run)
    execute_notebook(
        str(NOTEBOOK), str(tmp_path / "02.out.ipynb"), {"profile": "smoke", "run_dir": str(run)}, str(NOTEBOOK.parent)
    )
    metrics = json.loads((run / "metrics" / "02_filter_audit.json").read_text())
    expected = audit_summary(faithfulness_filter(read_jsonl(runfiles.traces_path(run))))
    coverage = ("n_pairs", "n_pairs_without_trace", "n_teachers", "n_stripped")
    assert [metrics[key] for key in coverage] == [30, 0, 1, 0]  # strip_think is off in smoke: nothing stripped
    for key, value in expected.items():
        assert metrics[key] == (None if value is None else pytest.approx(value)), key
    kept = read_jsonl(runfiles.faithful_traces_path(run))
    assert len(kept) == metrics["n_kept"] and all(r["faithful"] for r in kept)
    for name in ("02_kept_fraction", "02_lengths", "02_position_balance"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000
