"""Training fixtures shared by the training and GPU-check tests: small canonical pairs and faithful
traces about a harvest (labels alternate, so position gives nothing away), and a JSONL writer."""

from __future__ import annotations

import json
from pathlib import Path

from persrm_lib.core.output_format import render_output


def make_pair(i: int) -> dict:
    """A canonical pair; labels alternate so that position does not give the answer away."""
    label = "a" if i % 2 == 0 else "b"
    chosen, rejected = f"We gathered the wheat at dawn, field {i}.", f"Markets rallied on Tuesday, report {i}."
    return {
        "id": f"p{i}",
        "query": "Write about the harvest.",
        "exemplars": [f"The harvest came early this year; the barns, number {i}, filled by noon.", "Second exemplar."],
        "response_a": chosen if label == "a" else rejected,
        "response_b": rejected if label == "a" else chosen,
        "label": label,
        "positive_kind": "intra_author",
        "negative_kind": "random",
        "author": "author-1",
        "genre": "speech",
        "n_exemplars": 1,
    }


def make_trace(i: int) -> dict:
    pair = make_pair(i)
    scores = (8, 2) if pair["label"] == "a" else (3, 7.5)
    completion = render_output("sentence rhythm, semicolons", "the chosen response keeps the rhythm", scores)
    return pair | {"teacher": "stylometric", "completion": completion, "scores": list(scores), "faithful": True}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
