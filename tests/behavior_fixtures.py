"""Records in the stage owners' run-file formats, for the behaviour-analysis tests (test_behaviors,
test_notebook_07): full pairs for traces, evaluation completion records, and a JSONL writer for
hand-made (also deliberately broken) files."""

from __future__ import annotations

import json
from pathlib import Path

from persrm_lib.evaluate.records import EVAL_COMPLETION_FIELDS


def write_jsonl(path: Path, rows: list[object]) -> Path:
    """One JSON document a line, as given (no checking: tests write broken records with it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pair(pair_id: str, label: str = "a") -> dict:
    """A pair with every field of the pair contract (the teachers' make_trace adds the rest)."""
    return {
        "id": pair_id, "query": "Q", "exemplars": ["e"], "response_a": "A", "response_b": "B", "label": label,
        "positive_kind": "intra_author", "negative_kind": "random", "author": "x", "genre": "speech", "n_exemplars": 1,
    }  # fmt: skip


def eval_record(pair_id: str, stage: str, completion: str, order: str = "original", label: str = "a") -> dict:
    """One evaluation completion record with exactly the fields the evaluation's writer accepts."""
    record = {
        "id": f"{pair_id}:1:{order}", "pair_id": pair_id, "stage": stage, "model": "m", "benchmark": "sotu",
        "n_exemplars": 1, "order": order, "label": label, "completion": completion, "scores": None, "correct": False,
    }  # fmt: skip
    assert set(record) == set(EVAL_COMPLETION_FIELDS)
    return record
