"""The evaluation's records, fixed field names and one writer and one reader per file: per-pair
rows (:data:`RESULT_FIELDS`; ``<run>/eval/per_pair.csv``: :data:`PER_PAIR_FIELDS`) and every
completion of a reward-model stage (:data:`EVAL_COMPLETION_FIELDS`,
``<run>/eval/completions/<stage>.jsonl``; the stage is the file's name, never guessed from the text).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import runfiles
from ..core.jsonl import iter_jsonl, write_jsonl_atomic
from ..core.verdict import is_correct

STAGES: tuple[str, ...] = ("base", "sft", "rft")  # the reward model zero-shot, SFT only, SFT+RFT

RESULT_FIELDS: tuple[str, ...] = (
    "id", "benchmark", "judge", "n_exemplars", "label", "positive_kind", "negative_kind", "genre", "author",
    # the pair's verdict: the mean of both orders' scores when judged in both, else the original order's;
    # too_long: the prompt did not fit the judge's context, nothing generated, left out of the rates
    "s_a", "s_b", "preferred", "correct", "format_ok", "too_long",
    # each order's own verdict (swapped: A and B exchanged, scores in that order's slots; empty when not
    # judged); eval_side: the side the completion's <eval> says wins (metrics.eval_side), or None
    "original_s_a", "original_s_b", "original_preferred", "original_format_ok", "original_eval_side",
    "swapped_s_a", "swapped_s_b", "swapped_preferred", "swapped_format_ok", "swapped_eval_side",
    "completion", "swapped_completion",
)  # fmt: skip
COMPLETION_COLUMNS: tuple[str, ...] = ("completion", "swapped_completion")
# eval/per_pair.csv: the per-pair rows without the completions, and the stage (baseline, base, sft, rft)
PER_PAIR_FIELDS: tuple[str, ...] = (*(f for f in RESULT_FIELDS if f not in COMPLETION_COLUMNS), "stage")

EVAL_COMPLETION_FIELDS: tuple[str, ...] = (
    "id",  # <pair id>:<exemplar count>:<order>
    "pair_id", "stage", "model", "benchmark", "n_exemplars",  # stage: the file's; model: the base model's name
    "order",  # original, or swapped (A and B exchanged)
    "label",  # the labelled side in this order
    "completion",
    "scores",  # [s_a, s_b], or null for a format violation
    "correct",
)  # fmt: skip


def plain(value: Any) -> Any:
    """A JSON-safe scalar: numpy types to Python, NaN and infinities to None (JSON has neither).

    >>> plain(np.float64(0.5)), plain(float("nan")), plain("a")
    (0.5, None, 'a')
    """
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _difference(expected: Sequence[str], found: Sequence[Any]) -> str:
    missing = [c for c in expected if c not in found]
    extra = [str(c) for c in found if c not in expected]
    return f"(missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-safe records (NaN -> null).

    >>> json_records(pd.DataFrame({"x": [1.0, float("nan")]}))
    [{'x': 1.0}, {'x': None}]
    """
    return [{k: plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


# ---- per-pair rows ------------------------------------------------------------------------------


def write_per_pair(results: pd.DataFrame, path: str | Path) -> Path:
    """Write per-pair rows (with a ``stage`` column) to CSV, columns :data:`PER_PAIR_FIELDS`
    (pandas' KeyError for a missing one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    results[list(PER_PAIR_FIELDS)].to_csv(path, index=False)
    return path


def read_per_pair(path: str | Path) -> pd.DataFrame:
    """Read ``eval/per_pair.csv`` (written by :func:`write_per_pair`).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: its header is not :data:`PER_PAIR_FIELDS`, naming the file and the difference.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"per-pair results {path} do not exist: run 05_evaluate first")
    frame = pd.read_csv(path)
    if tuple(frame.columns) != PER_PAIR_FIELDS:
        raise ValueError(
            f"{path}: columns are not the per-pair fields {_difference(PER_PAIR_FIELDS, list(frame.columns))}"
        )
    return frame


# ---- completions per stage ----------------------------------------------------------------------


def completion_records(frame: pd.DataFrame, stage: str, model: str) -> list[dict[str, Any]]:
    """One record (:data:`EVAL_COMPLETION_FIELDS`) per completion in a generative stage's per-pair
    rows (``stage``: ``base``, ``sft`` or ``rft``; ``model``: the base model's name): the original
    order, then the swapped order where judged, each with its own order's scores and correctness
    (not the pair's averaged verdict). ``too_long`` rows generated nothing and have none."""
    out = []
    for row in frame.to_dict("records"):
        if row.get("too_long") in (True,):  # numpy booleans compare equal; None and NaN do not
            continue
        orders = [("original", "completion", row["label"])]
        if isinstance(row.get("swapped_completion"), str):
            orders.append(("swapped", "swapped_completion", "b" if row["label"] == "a" else "a"))
        for order, completion, label in orders:
            s_a, s_b = row[f"{order}_s_a"], row[f"{order}_s_b"]
            out.append(
                {
                    "id": f"{row['id']}:{row['n_exemplars']}:{order}",
                    "pair_id": row["id"],
                    "stage": stage,
                    "model": model,
                    "benchmark": row["benchmark"],
                    "n_exemplars": row["n_exemplars"],
                    "order": order,
                    "label": label,
                    "completion": row[completion],
                    "scores": None if s_a is None or pd.isna(s_a) else [plain(s_a), plain(s_b)],
                    "correct": is_correct(row[f"{order}_preferred"], label),
                }
            )
    return out


def check_stage(stage: str) -> None:
    """Raise ValueError for a stage not in :data:`STAGES`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")


def write_eval_completions(run: str | Path, stage: str, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write a stage's :func:`completion_records` to ``<run>/eval/completions/<stage>.jsonl``
    atomically and return its path; ValueError for an unknown stage, or a record whose fields are
    not :data:`EVAL_COMPLETION_FIELDS` or whose ``stage`` is another."""
    check_stage(stage)
    for k, record in enumerate(records):
        if set(record) != set(EVAL_COMPLETION_FIELDS):
            raise ValueError(f"completion record {k}: fields {list(record)}, expected {list(EVAL_COMPLETION_FIELDS)}")
        if record["stage"] != stage:
            raise ValueError(f"completion record {k}: stage {record['stage']!r} written to the {stage!r} file")
    return write_jsonl_atomic(records, runfiles.eval_completions_path(Path(run), stage))


def read_eval_completions(run: str | Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``(by_stage, notes)``: stage -> the records (:data:`EVAL_COMPLETION_FIELDS`, file order) of
    every stage whose ``<run>/eval/completions/<stage>.jsonl`` holds one; a note per stage that has none.

    Raises:
        ValueError: a line that is not a JSON object (``JsonlFormatError``), a record whose fields
            are not :data:`EVAL_COMPLETION_FIELDS` or whose stage is not its file's, naming file and line.
    """
    by_stage: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for stage in STAGES:
        path = runfiles.eval_completions_path(Path(run), stage)
        if not path.is_file():
            notes.append(f"no {stage} completions: {path} is absent (run 05_evaluate)")
            continue
        records = []
        for line, record in iter_jsonl(path):
            if set(record) != set(EVAL_COMPLETION_FIELDS):
                raise ValueError(
                    f"{path} line {line}: fields are not the evaluation completion fields "
                    + _difference(EVAL_COMPLETION_FIELDS, list(record))
                )
            if record["stage"] != stage:
                raise ValueError(f"{path} line {line}: stage {record['stage']!r} in the {stage!r} file")
            records.append(record)
        if records:
            by_stage[stage] = records
        else:
            notes.append(f"no {stage} completions: {path} holds no record")
    return by_stage, notes
