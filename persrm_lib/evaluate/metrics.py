"""Evaluation metrics over per-pair results (PersRM-R1 §4: accuracy tables, §5: analyses).

The input is the per-pair results table that :func:`persrm_lib.evaluate.judging.evaluate_pairs` builds,
one row per pair (:data:`persrm_lib.evaluate.records.RESULT_FIELDS`): the pair's verdict
(``preferred``, ``format_ok``: averaged over both orders when the pair was judged in both), each
order's own verdict (``original_preferred``/``original_format_ok``, ``swapped_preferred``/
``swapped_format_ok``; the swapped ones empty when only the original order was judged), the side
each order's ``<eval>`` says wins (``original_eval_side``, ``swapped_eval_side``) and ``too_long``.
Tables written before these columns existed are read as one order whose verdict is ``preferred``.
Breakdown columns: ``benchmark``, ``negative_kind``, ``positive_kind``, ``n_exemplars``, ``genre``.

- accuracy: the share of pairs whose labelled (chosen) response is scored strictly higher by the
  pair's verdict; ties and format violations are wrong (docs/design.md, "Reward-model output";
  :func:`persrm_lib.core.verdict.is_correct`).
- order-consistent accuracy: the share of pairs judged in both orders that are right in BOTH
  (J1, JudgeLM): a judge that always answers A scores 0.
- A-preference: the share of parsed per-order verdicts (ties included) that prefer response A;
  0.5 without position bias, 1.0 for a judge that always answers A.
- position consistency (``consistency``): the share of pairs judged in both orders on which the
  judge picks the same text in both, right or wrong (a tie or violation in either is inconsistent);
  a judge consistently wrong is consistent, so this is not order-consistent accuracy.
- format compliance: the share of per-order verdicts that parse.
- reasoning agreement: the share of parsed completions whose ``<eval>`` names a winner
  (:func:`eval_side`) and whose scores prefer that same side (PersRM-R1's claim is that the verdict
  follows from the reasoning; issue 12 item 4b).
- ``too_long`` pairs (prompts that did not fit the judge's context, counted instead of refused)
  are left out of every rate and counted in their own column.
- 95% intervals: percentile bootstrap over pairs (``scipy.stats.bootstrap``), seeded, so a table is reproducible.

>>> import pandas as pd
>>> rows = pd.DataFrame({"label": ["a", "b", "a", "b"], "preferred": ["a", "b", None, "a"],
...                      "format_ok": [True, True, False, True], "benchmark": ["x", "x", "y", "y"]})
>>> accuracy(rows), format_compliance(rows)
(0.5, 0.75)
>>> summarize(rows, by="benchmark")[["benchmark", "n", "accuracy"]].to_dict("records")
[{'benchmark': 'x', 'n': 2, 'accuracy': 1.0}, {'benchmark': 'y', 'n': 2, 'accuracy': 0.0}]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.output_format import parse_output
from ..core.verdict import Side, a_share, is_correct, preferred_side

BREAKDOWNS: tuple[str, ...] = ("benchmark", "negative_kind", "positive_kind", "n_exemplars", "genre")
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
OTHER_SIDE: dict[str, str] = {"a": "b", "b": "a"}


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# ---- does the verdict follow from the reasoning? -------------------------------------------------

# the stylometric teacher's overall verdict, compact ("A is closer to the author.") and full ("Response
# B is closer to the exemplars' style overall."); its per-criterion lines ("...; A." / "A is closer.")
# and its count ("A is closer on 3 of 5 criteria") are comparisons, not the decision
_SIDE_RE = re.compile(r"\b(?:Response\s+)?([AB]) is closer to the (?:author|exemplars)\b")


def eval_side(evaluation_text: object) -> Side | None:
    """The side an ``<eval>`` section says wins, or None when it states no side.

    Reads the stylometric teacher's form (:mod:`persrm_lib.teachers.stylometric`): the compact
    trace's last line ``A is closer to the author.``, the full trace's ``Response B is closer to the
    exemplars' style overall.``; when a text states a side more than once, the last statement
    counts (the conclusion). ``Both are equally close ...`` and per-criterion comparisons state no
    side.

    >>> eval_side("char n-grams: A 0.31, B 0.28; A.\\nB is closer to the author.")
    'b'
    >>> eval_side("A is closer on 3 of 5 criteria, B on 2. Response A is closer to the exemplars' style overall.")
    'a'
    >>> eval_side("Both are equally close to the author.") is None
    True
    """
    if not isinstance(evaluation_text, str):
        return None
    found = _SIDE_RE.findall(evaluation_text)
    return found[-1].lower() if found else None  # type: ignore[return-value]


def completion_eval_side(completion: object) -> Side | None:
    """:func:`eval_side` of a completion's ``<eval>``; None when the completion does not parse."""
    parsed = parse_output(completion)
    return eval_side(parsed.evaluation) if parsed.ok else None


def reasoning_agreement(completions: Iterable[object]) -> tuple[int, int]:
    """How many completions' scores prefer the side their own ``<eval>`` says wins.

    Args:
        completions: reward-model completions (any that does not parse is left out).

    Returns:
        ``(agree, n_with_side)``: ``n_with_side`` parsed completions whose eval names a side
        (:func:`eval_side`), ``agree`` of them whose scores prefer that side strictly (a tie disagrees).

    >>> from persrm_lib.core.output_format import render_output
    >>> reasoning_agreement([render_output("c", "A is closer to the author.", (7, 3)),
    ...                      render_output("c", "B is closer to the author.", (7, 3)),
    ...                      render_output("c", "Both are equally close to the author.", (5, 5)), "broken"])
    (1, 2)
    """
    agree = n_with_side = 0
    for completion in completions:
        parsed = parse_output(completion)
        side = eval_side(parsed.evaluation) if parsed.ok else None
        if side is None:
            continue
        n_with_side += 1
        agree += preferred_side(parsed.scores) == side
    return agree, n_with_side


# ---- per-pair rates ------------------------------------------------------------------------------


def scored(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that count in the rates: all but ``too_long`` ones (prompts that did not fit)."""
    if "too_long" not in results or results.empty:
        return results
    return results[[not (not _missing(v) and bool(v)) for v in results["too_long"]]]


def too_long_count(results: pd.DataFrame) -> int:
    """Pairs left out of the rates because their prompt did not fit the judge's context."""
    return len(results) - len(scored(results))


def _column(results: pd.DataFrame, name: str, fallback: str | None = None) -> list[object]:
    if name in results:
        return results[name].tolist()
    if fallback is not None and fallback in results:
        return results[fallback].tolist()
    return [None] * len(results)


def order_verdicts(results: pd.DataFrame) -> list[tuple[object, object, object, object]]:
    """Per pair: ``(original_preferred, original_format_ok, swapped_preferred, swapped_format_ok)``;
    the swapped ones are None where only the original order was judged. Older tables without the
    ``original_*`` columns hold the original order in ``preferred``/``format_ok``."""
    return list(
        zip(
            _column(results, "original_preferred", "preferred"),
            _column(results, "original_format_ok", "format_ok"),
            _column(results, "swapped_preferred"),
            _column(results, "swapped_format_ok"),
            strict=True,
        )
    )


def correct(results: pd.DataFrame) -> np.ndarray:
    """Per pair: True when the pair's verdict prefers the labelled response strictly (ties/violations: False)."""
    return np.array(
        [
            is_correct(None if _missing(p) else p, lab)
            for p, lab in zip(results["preferred"], results["label"], strict=True)
        ],
        dtype=bool,
    )


def accuracy(results: pd.DataFrame) -> float:
    """Share of pairs judged correctly (``too_long`` pairs left out); NaN for an empty table."""
    results = scored(results)
    return float(correct(results).mean()) if len(results) else float("nan")


def format_compliance(results: pd.DataFrame) -> float:
    """Share of per-order verdicts that parse (both orders where both were judged)."""
    values = []
    for _, ok, _, swapped_ok in order_verdicts(scored(results)):
        values.append(bool(ok))
        if not _missing(swapped_ok):
            values.append(bool(swapped_ok))
    return float(np.mean(values)) if values else float("nan")


def _both_orders(results: pd.DataFrame) -> list[tuple[object, object, object]]:
    """``(original_preferred, swapped_preferred, label)`` of each pair judged in both orders."""
    out = []
    for (p, _, q, done), label in zip(order_verdicts(results), results["label"], strict=True):
        if not _missing(done):
            out.append((None if _missing(p) else p, None if _missing(q) else q, label))
    return out


def order_consistent_accuracy(results: pd.DataFrame) -> float:
    """Share of pairs judged in both orders that are right in both; NaN when none was.

    In the swapped order the labelled response sits in the other slot, so the swapped verdict must
    name the other letter. A judge that always answers A is right in exactly one order of every
    pair: 0.
    """
    hits = pair_hits(scored(results), "order_consistent").dropna()
    return float(hits.mean()) if len(hits) else float("nan")


MEASURES: tuple[str, ...] = ("accuracy", "order_consistent")  # what pair_hits can score


def pair_hits(results: pd.DataFrame, measure: str = "accuracy") -> pd.Series:
    """Per row of ``results`` (same index): 1.0 when the pair counts as right under ``measure``,
    0.0 when not, NaN where the measure is undefined for it.

    ``accuracy``: the pair's verdict prefers the labelled response strictly (:func:`correct`).
    ``order_consistent``: right in the original order AND in the swapped one (the labelled response
    in the other slot); NaN for a pair judged in one order only.

    Raises:
        ValueError: for a measure not in :data:`MEASURES`.
    """
    if measure == "accuracy":
        return pd.Series(correct(results).astype(float), index=results.index, dtype=float)
    if measure == "order_consistent":
        values = []
        for (p, _, q, done), label in zip(order_verdicts(results), results["label"], strict=True):
            if _missing(done):
                values.append(float("nan"))
                continue
            right = is_correct(None if _missing(p) else p, label)
            right_swapped = is_correct(None if _missing(q) else q, OTHER_SIDE.get(str(label)))
            values.append(float(right and right_swapped))
        return pd.Series(values, index=results.index, dtype=float)
    raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURES)}")


def consistent(results: pd.DataFrame) -> np.ndarray:
    """Per pair judged in both orders: True when both orders prefer the same text (strictly, right or wrong)."""
    return np.array(
        [p is not None and q is not None and {p, q} == {"a", "b"} for p, q, _ in _both_orders(scored(results))],
        dtype=bool,
    )


def position_consistency(results: pd.DataFrame) -> float:
    """Share of pairs judged in both orders that were judged consistently; NaN when none was."""
    values = consistent(results)
    return float(values.mean()) if len(values) else float("nan")


def a_preference(results: pd.DataFrame) -> float:
    """Share of parsed per-order verdicts that prefer response A (ties count as parsed, not A).

    0.5 without position bias; 1.0 for a judge that always answers A; NaN when nothing parsed.
    """
    return a_share(parsed_sides(results))


def parsed_sides(results: pd.DataFrame) -> list[object]:
    """The preferred side of every per-order verdict that parses (None for a tie), original orders
    then swapped, over the rows that count (:func:`scored`)."""
    parsed = []
    for p, ok, q, swapped_ok in order_verdicts(scored(results)):
        if not _missing(ok) and bool(ok):
            parsed.append(p)
        if not _missing(swapped_ok) and bool(swapped_ok):
            parsed.append(q)
    return parsed


def reasoning_agreement_rate(results: pd.DataFrame) -> tuple[float, int]:
    """The share of per-order verdicts whose eval names a side (``original_eval_side``,
    ``swapped_eval_side``) and whose scores prefer it, and how many name a side; ``(nan, 0)`` when
    none does (baselines write no eval)."""
    results = scored(results)
    pairs = list(
        zip(_column(results, "original_eval_side"), _column(results, "original_preferred", "preferred"), strict=True)
    ) + list(zip(_column(results, "swapped_eval_side"), _column(results, "swapped_preferred"), strict=True))
    named = [(side, p) for side, p in pairs if not _missing(side)]
    if not named:
        return float("nan"), 0
    return float(np.mean([p == side for side, p in named])), len(named)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded), by ``scipy.stats.bootstrap``.

    Args:
        values: per-pair values (e.g. 1.0 correct, 0.0 wrong).
        n_bootstrap: resamples.
        seed: numpy seed; the same seed gives the same interval.
        confidence: the interval's coverage (0.95: the 2.5th and 97.5th percentiles).

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no values.

    >>> bootstrap_ci([1.0] * 10)
    (1.0, 1.0)
    >>> low, high = bootstrap_ci([1, 0] * 50, seed=1)
    >>> 0.38 < low < 0.5 < high < 0.62
    True
    """
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size < 2:  # no values: no interval; one value: every resample is that value (scipy wants two)
        return (float("nan"),) * 2 if data.size == 0 else (float(data[0]),) * 2
    interval = bootstrap(
        (data,), np.mean, n_resamples=n_bootstrap, confidence_level=confidence, method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return float(interval.low), float(interval.high)


def metric_row(results: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, float | int]:
    """The rates of a table: accuracy with its interval, order-consistent accuracy, A-preference,
    position consistency, format compliance and reasoning agreement, over the pairs that were judged
    (``n``); ``too_long`` pairs are counted apart."""
    kept = scored(results)
    hits = correct(kept).astype(float)
    low, high = bootstrap_ci(hits, n_bootstrap=n_bootstrap, seed=seed)
    agreement, n_reasoned = reasoning_agreement_rate(kept)
    return {
        "n": int(len(kept)),
        "too_long": too_long_count(results),
        "accuracy": float(hits.mean()) if len(hits) else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "order_consistent_accuracy": order_consistent_accuracy(kept),
        "a_preference": a_preference(kept),
        "consistency": position_consistency(kept),
        "format": format_compliance(kept),
        "reasoning_agreement": agreement,
        "n_reasoned": n_reasoned,
    }


METRIC_COLUMNS: tuple[str, ...] = (
    "n",
    "too_long",
    "accuracy",
    "ci_low",
    "ci_high",
    "order_consistent_accuracy",
    "a_preference",
    "consistency",
    "format",
    "reasoning_agreement",
    "n_reasoned",
)  # the columns of metric_row, in order


def summarize(
    results: pd.DataFrame, by: str | Sequence[str] | None = None, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0
) -> pd.DataFrame:
    """One row per group (sorted), with :func:`metric_row`'s columns.

    Args:
        results: per-pair results.
        by: column name(s) to group by; None for one overall row. Missing values group as "unknown".
        n_bootstrap: bootstrap resamples per group.
        seed: bootstrap seed (the same for every group).

    Returns:
        A DataFrame with the group columns, then :data:`METRIC_COLUMNS` (n, too_long, accuracy,
        ci_low, ci_high, order_consistent_accuracy, a_preference, consistency, format,
        reasoning_agreement, n_reasoned).
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    if not keys:
        return pd.DataFrame([metric_row(results, n_bootstrap, seed)])
    missing = [k for k in keys if k not in results]
    if missing:
        raise KeyError(f"results have no column(s) {', '.join(missing)} to group by")
    frame = results.copy()
    for key in keys:
        frame[key] = frame[key].apply(lambda v: "unknown" if _missing(v) else v)
    rows = []
    for values, group in frame.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        rows.append({**dict(zip(keys, values, strict=True)), **metric_row(group, n_bootstrap, seed)})
    return pd.DataFrame(rows)


def breakdowns(
    results: pd.DataFrame,
    columns: Sequence[str] = BREAKDOWNS,
    extra: Sequence[str] = (),
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """``{"overall": ..., column: ...}`` tables; each breakdown also groups by ``extra`` columns
    (e.g. ``("judge",)``). Columns absent from the results are left out."""
    extra = [c for c in extra if c in results]
    tables = {"overall": summarize(results, extra or None, n_bootstrap, seed)}
    for column in columns:
        if column in results:
            tables[column] = summarize(results, [*extra, column], n_bootstrap, seed)
    return tables


def accuracy_table(
    results: pd.DataFrame, rows: str = "judge", columns: str = "benchmark", digits: int = 1
) -> pd.DataFrame:
    """A paper-style table: accuracy in percent with its 95% interval, ``rows`` x ``columns``.

    >>> import pandas as pd
    >>> r = pd.DataFrame({"judge": ["j"] * 2, "benchmark": ["x"] * 2, "label": ["a", "a"],
    ...                   "preferred": ["a", "a"], "format_ok": [True, True]})
    >>> accuracy_table(r).loc["j", "x"]
    '100.0 [100.0, 100.0]'
    """
    table = summarize(results, [rows, columns])
    table["cell"] = [
        f"{100 * a:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
        for a, lo, hi in zip(table["accuracy"], table["ci_low"], table["ci_high"], strict=True)
    ]
    wide = table.pivot(index=rows, columns=columns, values="cell")
    wide.columns.name = None
    order = list(dict.fromkeys(results[rows]))  # rows in the order they were evaluated
    return wide.reindex([r for r in order if r in wide.index])


# ---- the reward model against each baseline, pair for pair -------------------------------------

PAIR_KEYS: tuple[str, ...] = ("id", "n_exemplars")  # one judgement per pair and exemplar count


def paired_comparison(
    results: pd.DataFrame,
    model: str,
    baselines: Sequence[str],
    by: str | None = "negative_kind",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    measure: str = "accuracy",
) -> pd.DataFrame:
    """Accuracy of ``model`` minus each baseline's on the pairs both judged, with a paired interval.

    A generative stage is usually run on a seeded subset of the test pairs while a baseline scores
    them all; comparing the two on different pairs would mix judge and sample. Here every row
    restricts both to the pairs (``id`` and ``n_exemplars``) that ``model`` judged, and the 95%
    interval of the difference resamples those pairs jointly (a paired bootstrap).

    Args:
        results: per-pair results with ``judge`` and the :data:`PAIR_KEYS` columns.
        model: the judge under test (e.g. ``"rm-rft"``).
        baselines: judges to compare with; ones absent from ``results`` are left out.
        by: a breakdown column (``None``: one row per baseline over all shared pairs); an ``"all"``
            row per baseline is always included.
        n_bootstrap: resamples; seed: their seed.
        measure: ``accuracy`` or ``order_consistent`` (:func:`pair_hits`; pairs that either judge
            did not judge in both orders are left out of the latter). The ``*_accuracy`` columns
            hold the measure.

    Returns:
        Rows ``baseline, group, n, model_accuracy, baseline_accuracy, difference, diff_low,
        diff_high``; empty when ``model`` judged nothing.

    Raises:
        KeyError: a column the comparison needs is missing. ValueError: an unknown ``measure``.

    >>> r = pd.DataFrame({"judge": ["m"] * 2 + ["b"] * 3, "id": [1, 2, 1, 2, 3], "n_exemplars": [1] * 5,
    ...                   "label": ["a"] * 5, "preferred": ["a", "a", "b", "a", "b"], "format_ok": [True] * 5,
    ...                   "negative_kind": ["x", "y", "x", "y", "y"]})
    >>> paired_comparison(r, "m", ["b"])[["group", "n", "model_accuracy", "baseline_accuracy", "difference"]].values.tolist()
    [['all', 2, 1.0, 0.5, 0.5], ['x', 1, 1.0, 0.0, 1.0], ['y', 1, 1.0, 1.0, 0.0]]
    """
    missing = [c for c in ("judge", *PAIR_KEYS, *([by] if by else [])) if c not in results]
    if missing:
        raise KeyError(f"results have no column(s) {', '.join(missing)} for a paired comparison")
    columns = ["baseline", "group", "n", "model_accuracy", "baseline_accuracy", "difference", "diff_low", "diff_high"]
    results = scored(results)
    mine = results[results["judge"] == model].copy()
    if mine.empty:
        return pd.DataFrame(columns=columns)
    mine["hit"] = pair_hits(mine, measure)
    rows = []
    for baseline in baselines:
        theirs = results[results["judge"] == baseline].copy()
        if theirs.empty:
            continue
        theirs["hit"] = pair_hits(theirs, measure)
        keep = [*PAIR_KEYS, "hit", *([by] if by else [])]
        joined = mine[keep].merge(theirs[[*PAIR_KEYS, "hit"]], on=list(PAIR_KEYS), suffixes=("_m", "_b"))
        joined = joined.dropna(subset=["hit_m", "hit_b"])
        groups = [("all", joined)]
        if by:
            labels = joined[by].apply(lambda v: "unknown" if _missing(v) else str(v))
            groups += [(str(g), part) for g, part in joined.groupby(labels, sort=True)]
        for group, part in groups:
            diff = (part["hit_m"] - part["hit_b"]).to_numpy()
            low, high = bootstrap_ci(diff, n_bootstrap=n_bootstrap, seed=seed)
            rows.append(
                {
                    "baseline": baseline,
                    "group": group,
                    "n": int(len(part)),
                    "model_accuracy": float(part["hit_m"].mean()) if len(part) else float("nan"),
                    "baseline_accuracy": float(part["hit_b"].mean()) if len(part) else float("nan"),
                    "difference": float(diff.mean()) if len(diff) else float("nan"),
                    "diff_low": low,
                    "diff_high": high,
                }
            )
    return pd.DataFrame(rows, columns=columns)


GOAL_FORMAT = 0.99  # at least 99% of per-order verdicts parse (issue 12's target, issue 7's before it)
GOAL_A_PREFERENCE = (0.4, 0.6)  # issue 12: no position bias in the parsed verdicts of a trained stage
TRAINED_STAGES: tuple[str, ...] = ("rm-sft", "rm-rft")  # in training order
GOAL_COLUMNS: tuple[str, ...] = ("goal", "value", "interval", "target", "met", "decisive")


def goal_key(goal: str) -> str:
    """A goal's stable key: its name before the measured part in parentheses, in snake case (what
    the headline metrics and the regression gate name it by).

    >>> goal_key("order-consistent accuracy: rm-sft - rm-base (n=32; 0.781 vs 0.000)")
    'order_consistent_accuracy_rm_sft_rm_base'
    """
    return re.sub(r"[^a-z0-9]+", "_", goal.split(" (")[0].lower()).strip("_")


def _difference_goal(
    results: pd.DataFrame,
    model: str,
    other: str,
    measure: str,
    what: str,
    target: str,
    n_bootstrap: int,
    seed: int,
) -> dict[str, object]:
    """One goal on ``model`` minus ``other`` over the pairs both judged (paired interval); ``target``
    is ``> 0``, ``>= 0`` or ``interval > 0``."""
    paired = paired_comparison(results, model, [other], None, n_bootstrap, seed, measure)
    if paired.empty or int(paired.iloc[0]["n"]) == 0:
        return {
            "goal": f"{what}: {model} - {other} (not measured: no pair judged by both)",
            "value": float("nan"),
            "interval": "",
            "target": target,
            "met": False,
            "decisive": False,
        }
    row = paired.iloc[0]
    diff, low, high = float(row["difference"]), float(row["diff_low"]), float(row["diff_high"])
    met = {"> 0": diff > 0, ">= 0": diff >= 0, "interval > 0": low > 0}[target]
    return {
        "goal": f"{what}: {model} - {other} (n={int(row['n'])}; {row['model_accuracy']:.3f} vs {row['baseline_accuracy']:.3f})",
        "value": round(diff, 4),
        "interval": f"[{low:.3f}, {high:.3f}]",
        "target": target,
        "met": bool(met),
        "decisive": bool(low > 0),
    }


def _rate_goal(what: str, value: float, target: str, inside: Callable[[float], bool]) -> dict[str, object]:
    """A goal on one rate (no interval): met when the value is defined and ``inside`` holds."""
    met = bool(not np.isnan(value) and inside(value))
    return {"goal": what, "value": round(value, 4), "interval": "", "target": target, "met": met, "decisive": met}


def _stage_goals(results: pd.DataFrame, stages: Sequence[str], position: bool) -> list[dict[str, object]]:
    """Per trained stage of ``stages``: format compliance at least :data:`GOAL_FORMAT` and, with
    ``position``, an A-preference within :data:`GOAL_A_PREFERENCE`; a stage with no rows is named
    ``(not run)`` and not met."""
    low, high = GOAL_A_PREFERENCE
    rows = []
    for stage in [s for s in stages if s in TRAINED_STAGES]:
        mine = results[results["judge"] == stage]
        suffix = "" if len(mine) else " (not run)"
        rows.append(
            _rate_goal(f"format compliance, {stage}{suffix}", format_compliance(mine), f">= {GOAL_FORMAT}",
                       lambda v: v >= GOAL_FORMAT)
        )  # fmt: skip
        if position:
            rows.append(
                _rate_goal(f"A-preference, {stage}{suffix}", a_preference(mine), f"in [{low}, {high}]",
                           lambda v: low <= v <= high)
            )  # fmt: skip
    return rows


def reference_goals(
    results: pd.DataFrame,
    stages: Sequence[str] = ("rm-base", *TRAINED_STAGES),
    baseline: str = "char-ngram",
    evidence_baseline: str = "evidence-lr",
    benchmark: str = "sotu",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """The reference run's targets (issue 12), each with its measured value and whether it is met.

    Over the pooled held-out pairs of ``results`` (one exemplar count):

    - every trained stage of ``stages`` (:data:`TRAINED_STAGES`) formats at least
      :data:`GOAL_FORMAT` of its per-order verdicts and prefers A in a share of its parsed verdicts
      within :data:`GOAL_A_PREFERENCE`;
    - order-consistent accuracy rises stage by stage: SFT above base, and RFT above SFT with the
      95% paired interval of the difference above 0;
    - the most-trained stage is at least as accurate as ``baseline`` on the ``benchmark`` pairs,
      and more accurate than ``evidence_baseline`` (what the stylometric evidence alone can do)
      on all pairs.

    Differences are paired: both judges on the pairs both judged (:func:`paired_comparison`).
    ``decisive`` says whether the 95% interval of a difference lies above 0 (for a rate goal: the
    same as ``met``). A goal that cannot be measured (a stage or baseline that did not run) is
    not met and says so.

    Args:
        results: per-pair results with ``judge``, ``id``, ``n_exemplars`` and ``benchmark``.
        stages: the reward-model stages in training order (base, SFT, RFT).

    Returns:
        Rows ``goal, value, interval, target, met, decisive`` (:data:`GOAL_COLUMNS`).
    """
    present = [s for s in stages if s in set(results.get("judge", pd.Series(dtype=object)))]
    rows = _stage_goals(results, stages, position=True)
    for earlier, later in zip(stages, stages[1:], strict=False):
        target = "interval > 0" if later == stages[-1] and len(stages) > 2 else "> 0"
        rows.append(
            _difference_goal(
                results, later, earlier, "order_consistent", "order-consistent accuracy", target, n_bootstrap, seed
            )
        )
    focus = present[-1] if present else stages[-1]
    on_benchmark = results[results["benchmark"] == benchmark] if "benchmark" in results else results.iloc[:0]
    rows.append(
        _difference_goal(
            on_benchmark, focus, baseline, "accuracy", f"accuracy on {benchmark}", ">= 0", n_bootstrap, seed
        )
    )
    rows.append(_difference_goal(results, focus, evidence_baseline, "accuracy", "accuracy", "> 0", n_bootstrap, seed))
    return pd.DataFrame(rows, columns=list(GOAL_COLUMNS))


GOAL_ORDER_CONSISTENT = 0.90  # the persona benchmark's bar for the most-trained stage
GOAL_CRITERIA_RECALL = 0.8  # share of the persona's true operators its <criteria> names


def persona_goals(
    results: pd.DataFrame,
    criteria_recall: Mapping[str, float],
    pairwise: bool,
    stages: Sequence[str] = ("rm-base", *TRAINED_STAGES),
    baseline: str = "char-ngram",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """The persona benchmark's targets for a reference run, each with its value and whether it is met.

    On held-out persona pairs (``results`` holds only those, one exemplar count):

    - every trained stage formats at least :data:`GOAL_FORMAT` of its verdicts; with ``pairwise``,
      its parsed verdicts prefer A in a share within :data:`GOAL_A_PREFERENCE` (a pointwise judge
      reads one response per prompt, so it has no position to prefer);
    - order-consistent accuracy rises: SFT minus base with its 95% paired interval above 0, RFT at
      least SFT;
    - the most-trained stage is order-consistent on at least :data:`GOAL_ORDER_CONSISTENT` of the
      pairs, at least as accurate as ``baseline`` on the same pairs, and its ``<criteria>`` name at
      least :data:`GOAL_CRITERIA_RECALL` of the persona's true operators (``criteria_recall``: judge
      -> mean recall, :func:`persrm_lib.evaluate.persona_reasoning.reasoning_metrics`).

    Args:
        results: per-pair results with ``judge``, ``id`` and the verdict columns.
        criteria_recall: mean criteria recall per reward-model judge (missing: not measured).
        pairwise: whether the stages judged in the pairwise format.

    Returns:
        Rows ``goal, value, interval, target, met, decisive`` (:data:`GOAL_COLUMNS`).
    """
    present = [s for s in stages if s in set(results.get("judge", pd.Series(dtype=object)))]
    rows = _stage_goals(results, stages, position=pairwise)
    for earlier, later, target in zip(stages, stages[1:], ("interval > 0", ">= 0"), strict=False):
        rows.append(
            _difference_goal(
                results, later, earlier, "order_consistent", "order-consistent accuracy", target, n_bootstrap, seed
            )
        )
    focus = present[-1] if present else stages[-1]
    mine = results[results["judge"] == focus]
    oc = order_consistent_accuracy(mine) if len(mine) else float("nan")
    at_least = f">= {GOAL_ORDER_CONSISTENT}"
    rows.append(_rate_goal(f"order-consistent accuracy, {focus}", oc, at_least, lambda v: v >= GOAL_ORDER_CONSISTENT))
    rows.append(_difference_goal(results, focus, baseline, "accuracy", "accuracy", ">= 0", n_bootstrap, seed))
    recall = float(criteria_recall.get(focus, float("nan")))
    rows.append(
        _rate_goal(
            f"criteria recall, {focus}", recall, f">= {GOAL_CRITERIA_RECALL}", lambda v: v >= GOAL_CRITERIA_RECALL
        )
    )
    return pd.DataFrame(rows, columns=list(GOAL_COLUMNS))
