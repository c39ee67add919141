"""The reward model's reasoning scored against ground truth, on persona pairs
(:mod:`persrm_lib.data.personas`), where the exemplars' operators and what each response shows are known:

- ``criteria_precision`` / ``criteria_recall``: of the operators ``<criteria>`` names, the share that
  the exemplars were written with; of those, the share it names. ``criteria_exact``: exactly the persona.
- ``check_agreement``: the share of ``<eval>`` checks (``shows: …``, one per response) whose
  operators are exactly those the response was written with.
- ``verdict_follows_checks``: the verdict is the one its own checks imply
  (:func:`persrm_lib.teachers.persona.match_score`): the same preferred side (pairwise), or the
  same side of the midpoint (pointwise).

Completions that do not parse, or whose sections are not in the persona teacher's vocabulary,
count as wrong in every rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..core.output_format import parse_output
from ..core.pointwise import MIDPOINT, split_completions
from ..core.verdict import preferred_side
from ..data.pairs import SWAPPED_SUFFIX
from ..data.personas import is_persona_pair, true_operators
from ..teachers.persona import match_score, read_checks, read_criteria
from .records import plain

REASONING_COLUMNS = (
    "judge", "n_completions", "format", "criteria_precision", "criteria_recall", "criteria_exact",
    "check_agreement", "verdict_follows_checks",
)  # fmt: skip


def completion_reasoning(pair: Mapping[str, Any], completion: str, sides: tuple[str, ...]) -> dict[str, float]:
    """The rates of :data:`REASONING_COLUMNS` (from ``format`` on) of ONE completion about ``pair``
    (original order); ``sides``: the responses it judges, in its order (``("a", "b")``, swapped
    ``("b", "a")``, pointwise ``("a",)`` or ``("b",)``). Precision is NaN when it names no
    operator, recall NaN for a persona with none; ``check_agreement`` is the share of ``sides``
    checked right."""
    mode = "pointwise" if len(sides) == 1 else "pairwise"
    parsed = parse_output(completion, mode=mode)
    truth = true_operators(pair, "exemplars")
    out = {
        "format": float(parsed.ok),
        "criteria_precision": float("nan"),
        "criteria_recall": float("nan") if not truth else 0.0,
        "criteria_exact": 0.0,
        "check_agreement": 0.0,
        "verdict_follows_checks": 0.0,
    }
    if not parsed.ok:
        return out
    named = read_criteria(parsed.criteria)
    if named is not None:
        if named:
            out["criteria_precision"] = len(named & truth) / len(named)
        if truth:
            out["criteria_recall"] = len(named & truth) / len(truth)
        out["criteria_exact"] = float(named == truth)
    checks = read_checks(parsed.evaluation)
    if len(checks) == len(sides):
        right = [c is not None and c.shows == true_operators(pair, s) for c, s in zip(checks, sides, strict=True)]
        out["check_agreement"] = sum(right) / len(sides)
        if all(c is not None for c in checks):
            implied = [match_score(c) for c in checks]  # type: ignore[arg-type]
            if mode == "pointwise":
                follows = parsed.score is not None and (parsed.score > MIDPOINT) == (implied[0] > MIDPOINT)
            else:
                follows = preferred_side(parsed.scores) == preferred_side(implied)
            out["verdict_follows_checks"] = float(follows)
    return out


def persona_reasoning(results: pd.DataFrame, pairs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row of :func:`completion_reasoning` rates per completion of a reward-model stage
    (``results``: the evaluation's rows with ``stage``) on a persona pair (``pairs``: id -> test
    pair), after ``judge``, ``id``, ``n_exemplars``, ``order`` (original / swapped / a / b)."""
    rows = []
    generated = results[results["stage"] != "baseline"] if "stage" in results else results.iloc[0:0]
    for record in generated.itertuples(index=False):
        pair = pairs.get(record.id)
        if pair is None or not is_persona_pair(pair) or not isinstance(record.completion, str):
            continue
        split = split_completions(record.completion)
        items: list[tuple[str, str, tuple[str, ...]]]
        if split is not None:  # pointwise: one completion per response
            items = [("a", split[0], ("a",)), ("b", split[1], ("b",))]
        else:
            items = [("original", record.completion, ("a", "b"))]
            if isinstance(record.swapped_completion, str):
                items.append(("swapped", record.swapped_completion, ("b", "a")))
        for order, text, sides in items:
            rows.append(
                {"judge": record.judge, "id": record.id, "n_exemplars": record.n_exemplars, "order": order,
                 **completion_reasoning(pair, text, sides)}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=["judge", "id", "n_exemplars", "order", *REASONING_COLUMNS[2:]])


def rft_reasoning(records: Sequence[Mapping[str, Any]], pairs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row of :func:`completion_reasoning` rates per sampled GRPO completion
    (:func:`persrm_lib.train.logs.read_grpo_completions`) on a persona pair (``pairs``: id ->
    training pair), after ``step``, ``pair_id``, ``order`` (original / swapped / a / b). A ``pair_id``
    ending in ``:swapped`` judged the swapped order; a pointwise record carries its ``side``."""
    rows = []
    for record in records:
        pair_id = str(record["pair_id"])
        swapped = pair_id.endswith(SWAPPED_SUFFIX)
        pair = pairs.get(pair_id.removesuffix(SWAPPED_SUFFIX))
        if pair is None or not is_persona_pair(pair):
            continue
        side = record.get("side")
        if side is not None:
            order, sides = side, (side,)
        else:
            order, sides = ("swapped", ("b", "a")) if swapped else ("original", ("a", "b"))
        rows.append(
            {"step": record["step"], "pair_id": pair["id"], "order": order,
             **completion_reasoning(pair, record["completion"], sides)}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["step", "pair_id", "order", *REASONING_COLUMNS[2:]])


def reasoning_by_step(per_completion: pd.DataFrame) -> pd.DataFrame:
    """Mean rates per GRPO step of :func:`rft_reasoning`'s rows (NaN-aware, as
    :func:`reasoning_metrics`), with ``n_completions``; one row per step, in step order."""
    return _mean_rates(per_completion, "step")


def reasoning_metrics(per_completion: pd.DataFrame) -> pd.DataFrame:
    """Mean rates per judge (NaN-aware: precision over completions that name an operator, recall
    over personas that have one), with ``n_completions``: :data:`REASONING_COLUMNS`."""
    return _mean_rates(per_completion, "judge", sort=False)


def _mean_rates(per_completion: pd.DataFrame, by: str, sort: bool = True) -> pd.DataFrame:
    """NaN-aware mean of every rate per ``by`` group, ``n_completions`` first, ``by`` a column."""
    if per_completion.empty:
        return pd.DataFrame(columns=[by, *REASONING_COLUMNS[1:]])
    grouped = per_completion.groupby(by, sort=sort)
    out = grouped[list(REASONING_COLUMNS[2:])].mean()
    out.insert(0, "n_completions", grouped.size())
    return out.reset_index()


def reasoning_headline(table: pd.DataFrame) -> dict[str, float | None]:
    """``<rate>_<judge>`` (``-`` written ``_``, 4 decimals, None for NaN) for notebook 05's metrics."""
    out: dict[str, float | None] = {}
    for row in table.itertuples(index=False):
        key = str(row.judge).replace("-", "_")
        for name in REASONING_COLUMNS[3:]:
            out[f"{name}_{key}"] = plain(round(float(getattr(row, name)), 4))
    return out


def step_headline(by_step: pd.DataFrame) -> dict[str, float | None]:
    """``rft_<rate>_first`` / ``rft_<rate>_last``: :func:`reasoning_by_step`'s rates at the first and
    the last GRPO step (4 decimals, None for NaN) for notebook 07's metrics; empty without persona
    completions."""
    if by_step.empty:
        return {}
    out: dict[str, float | None] = {}
    for when, row in (("first", by_step.iloc[0]), ("last", by_step.iloc[-1])):
        for name in REASONING_COLUMNS[2:]:
            out[f"rft_{name}_{when}"] = plain(round(float(row[name]), 4))
    return out
