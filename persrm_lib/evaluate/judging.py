"""The judging loop, shared by the command line (:mod:`.cli`), notebook 05's suite (:mod:`.suite`)
and the benchmarks: every pair scored by a judge, as written and with A and B exchanged (JudgeLM's
swap augmentation, J1's both-order protocol), tabulated one row per pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..core.output_format import strip_think
from ..core.verdict import exemplar_count, is_correct
from . import metrics
from .judges import Judge, Verdict, swap_pair
from .records import RESULT_FIELDS

ORDERS: tuple[str, ...] = ("both", "original")  # judge each pair in both orders (averaged), or as written


class EvaluationInputError(ValueError):
    """Input the evaluation cannot use; the command line exits with code 2 on it."""


class EvaluationInterrupted(RuntimeError):
    """Judging failed after it began; ``results`` holds the rows of the pairs judged before it."""

    def __init__(self, cause: BaseException, results: pd.DataFrame, n_pairs: int) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.results, self.n_pairs = cause, results, n_pairs


def select_pairs(pairs: Sequence[Mapping[str, Any]], limit: int | None, seed: int = 0) -> list[Mapping[str, Any]]:
    """``limit`` (at least 1) pairs drawn without replacement with ``seed``, kept in file order (all when None)."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    # a prefix of one seeded permutation: a smaller draw is a subset of a larger one with the same seed,
    # so judges run on different budgets (loglik, scalar-rm, the generative stages) share their pairs
    chosen = np.sort(np.random.default_rng(seed).permutation(len(pairs))[:limit])
    return [pairs[int(i)] for i in chosen]


def check_exemplar_counts(pairs: Sequence[Mapping[str, Any]], n_exemplars: int | None) -> None:
    """Every pair can be read with ``n_exemplars`` (:func:`persrm_lib.core.verdict.exemplar_count`)."""
    for pair in pairs:
        try:
            exemplar_count(pair, n_exemplars)
        except ValueError as exc:
            raise EvaluationInputError(f"--n-exemplars {n_exemplars}: {exc}") from exc


def average_orders(original: Verdict, swapped: Verdict) -> Verdict:
    """The pair's verdict from both orders: each response's score is the mean of its two scores
    (response A sits in slot B once swapped). A format violation in either order makes a violation,
    a prompt too long in either order makes it ``too_long``; an always-A judge ties."""
    if original.too_long or swapped.too_long:
        return Verdict(None, None, too_long=True)
    if original.scores is None or swapped.scores is None:
        return Verdict(None, None)
    return Verdict((original.s_a + swapped.s_b) / 2, (original.s_b + swapped.s_a) / 2)  # type: ignore[operator]


def evaluate_pairs(
    judge: Judge,
    pairs: Sequence[Mapping[str, Any]],
    n_exemplars: int | None = None,
    orders: str = "both",
    benchmark: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every pair (``orders="both"``: also with A and B exchanged, verdict by
    :func:`average_orders`) and return one row per pair with the columns of :data:`RESULT_FIELDS`.

    Each order's own verdict is kept in the ``original_*`` and ``swapped_*`` columns. A
    position-invariant judge's swapped verdict is its two scores exchanged; every other judge
    scores the swapped pairs for real, both orders in one batch. ``n_exemplars``: the first K
    exemplars (None: each pair's own); ``benchmark``: the value for a pair without one.

    Raises:
        ValueError: an unknown ``orders``.
        EvaluationInterrupted: judging failed after at least one batch was judged; it carries the
            rows judged so far (``results``) and the cause.
    """
    from tqdm import tqdm

    if orders not in ORDERS:
        raise ValueError(f"orders must be one of {', '.join(ORDERS)}, got {orders!r}")
    both = orders == "both"
    check_exemplar_counts(pairs, n_exemplars)
    pairs = list(pairs)
    verdicts: list[Verdict] = []
    swapped: list[Verdict] = []
    try:
        for begin in tqdm(range(0, len(pairs), batch_size), desc=f"judge {judge.name}", disable=not progress):
            chunk = pairs[begin : begin + batch_size]
            if both and not judge.position_invariant:
                judged = judge.score_batch(chunk + [swap_pair(p) for p in chunk], n_exemplars)
                verdicts += judged[: len(chunk)]
                swapped += judged[len(chunk) :]
            else:
                verdicts += judge.score_batch(chunk, n_exemplars)
    except BaseException as exc:  # keep what was judged: the caller writes it as partial results
        if not verdicts:
            raise
        done = _result_rows(judge, pairs[: len(verdicts)], verdicts, swapped, both, n_exemplars, benchmark)
        raise EvaluationInterrupted(exc, done, len(pairs)) from exc
    return _result_rows(judge, pairs, verdicts, swapped, both, n_exemplars, benchmark)


def _order_columns(prefix: str, verdict: Verdict | None, think: bool) -> dict[str, Any]:
    """One order's own verdict as ``<prefix>s_a`` ... ``<prefix>eval_side`` (all None when not judged)."""
    if verdict is None:
        return dict.fromkeys(f"{prefix}{k}" for k in ("s_a", "s_b", "preferred", "format_ok", "eval_side"))
    completion = strip_think(verdict.completion)[0] if think and verdict.completion else verdict.completion
    return {
        f"{prefix}s_a": verdict.s_a,
        f"{prefix}s_b": verdict.s_b,
        f"{prefix}preferred": verdict.preferred,
        f"{prefix}format_ok": verdict.format_ok,
        f"{prefix}eval_side": metrics.completion_eval_side(completion) if completion else None,
    }


def _result_rows(
    judge: Judge,
    pairs: Sequence[Mapping[str, Any]],
    verdicts: list[Verdict],
    swapped: list[Verdict],
    both: bool,
    n_exemplars: int | None,
    benchmark: str | None,
) -> pd.DataFrame:
    """The rows of :func:`evaluate_pairs` for the pairs judged (``verdicts`` in pair order)."""
    think = bool(getattr(judge, "strip_think", False))  # the eval is read after a stripped think block
    if both and judge.position_invariant:
        swapped = [replace(v, s_a=v.s_b, s_b=v.s_a) for v in verdicts]
    rows = []
    for k, (pair, verdict) in enumerate(zip(pairs, verdicts, strict=True)):
        other = swapped[k] if both else None
        pair_verdict = average_orders(verdict, other) if other is not None else verdict
        rows.append(
            {
                **{key: pair.get(key) for key in ("id", "label", "positive_kind", "negative_kind", "genre", "author")},
                "benchmark": pair.get("benchmark") or benchmark or "pairs",
                "judge": judge.name,
                "n_exemplars": exemplar_count(pair, n_exemplars),
                "s_a": pair_verdict.s_a,
                "s_b": pair_verdict.s_b,
                "preferred": pair_verdict.preferred,
                "correct": is_correct(pair_verdict.preferred, pair["label"]),  # an unlabelled pair: False
                "format_ok": pair_verdict.format_ok,
                "too_long": pair_verdict.too_long,
                **_order_columns("original_", verdict, think),
                **_order_columns("swapped_", other, think),
                "completion": verdict.completion,
                "swapped_completion": None if other is None or judge.position_invariant else other.completion,
            }
        )
    return pd.DataFrame(rows, columns=list(RESULT_FIELDS))
