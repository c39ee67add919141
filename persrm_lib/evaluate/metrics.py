"""Evaluation metrics over per-pair results (PersRM-R1 §4: accuracy tables, §5: analyses).

The input is :func:`persrm_lib.evaluate.judging.evaluate_pairs`'s table
(:data:`persrm_lib.evaluate.records.RESULT_FIELDS`); a table without the ``original_*`` columns is
read as one order whose verdict is ``preferred``/``format_ok``. ``too_long`` pairs are left out of
every rate and counted in their own column. The rates are defined in docs/design.md ("Order
robustness") and in each function below; 95% intervals are a seeded percentile bootstrap over pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.output_format import parse_output
from ..core.verdict import Side, a_share, is_correct, read_verdict

BREAKDOWNS: tuple[str, ...] = ("benchmark", "negative_kind", "positive_kind", "n_exemplars", "genre")
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
OTHER_SIDE: dict[str, str] = {"a": "b", "b": "a"}
NAN = float("nan")


def is_missing(value: object) -> bool:
    """None, NaN or NaT (text never counts as missing)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _mean(values: Sequence[float] | np.ndarray | pd.Series) -> float:
    return float(np.mean(values)) if len(values) else NAN


# The stylometric teacher's overall verdict, compact or full; the whole sentence is matched so that
# per-criterion lines ("...; A.") and counts ("A is closer on 3 of 5 criteria") do not count.
_SIDE_RE = re.compile(r"\b(?:Response\s+)?([AB]) is closer to the (?:author|exemplars)\b")


def eval_side(evaluation_text: object) -> Side | None:
    """The side an ``<eval>`` section says wins in the stylometric teacher's form (the last such
    statement); None when it states none (ties and per-criterion comparisons state none)."""
    found = _SIDE_RE.findall(evaluation_text) if isinstance(evaluation_text, str) else []
    return found[-1].lower() if found else None  # type: ignore[return-value]


def completion_eval_side(completion: object) -> Side | None:
    """:func:`eval_side` of a completion's ``<eval>``; None when the completion does not parse."""
    parsed = parse_output(completion)
    return eval_side(parsed.evaluation) if parsed.ok else None


def reasoning_agreement(completions: Iterable[object]) -> tuple[int, int]:
    """``(agree, n_with_side)``: of the parsed completions whose eval names a side (``n_with_side``),
    how many have scores preferring that side strictly (a tie disagrees)."""
    sides = [(completion_eval_side(c), read_verdict(c).preferred) for c in completions]
    agree = [preferred == side for side, preferred in sides if side is not None]
    return sum(agree), len(agree)


def scored(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that count in the rates: all but ``too_long`` ones (prompts that did not fit)."""
    if "too_long" not in results or results.empty:
        return results
    return results[[is_missing(v) or not bool(v) for v in results["too_long"]]]


def _column(results: pd.DataFrame, name: str, fallback: str | None = None) -> list[object]:
    for column in (name, fallback):
        if column is not None and column in results:
            return [None if is_missing(v) else v for v in results[column]]
    return [None] * len(results)


def order_verdicts(results: pd.DataFrame) -> list[tuple[object, object, object, object]]:
    """Per pair: ``(original_preferred, original_format_ok, swapped_preferred, swapped_format_ok)``,
    missing values as None (the swapped ones where only the original order was judged)."""
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
        [is_correct(p, lab) for p, lab in zip(_column(results, "preferred"), results["label"], strict=True)], dtype=bool
    )


def accuracy(results: pd.DataFrame) -> float:
    """Share of pairs judged correctly (``too_long`` pairs left out); NaN for an empty table."""
    return _mean(correct(scored(results)))


def format_compliance(results: pd.DataFrame) -> float:
    """Share of per-order verdicts that parse (both orders where both were judged)."""
    verdicts = order_verdicts(scored(results))
    return _mean([bool(ok) for _, ok, _, _ in verdicts] + [bool(s) for *_, s in verdicts if s is not None])


def order_consistent_accuracy(results: pd.DataFrame) -> float:
    """Share of pairs judged in both orders that are right in both; NaN when none was."""
    return _mean(pair_hits(scored(results), "order_consistent").dropna())


MEASURES: tuple[str, ...] = ("accuracy", "order_consistent")  # what pair_hits can score


def pair_hits(results: pd.DataFrame, measure: str = "accuracy") -> pd.Series:
    """Per row of ``results`` (same index): 1.0 when the pair is right under ``measure``, 0.0 when
    not, NaN where undefined. ``accuracy``: :func:`correct`. ``order_consistent``: right as written
    AND right swapped (the labelled response in the other slot); NaN for a pair judged in one order.
    ValueError for a measure not in :data:`MEASURES`.
    """
    if measure == "accuracy":
        values = correct(results).astype(float)
    elif measure == "order_consistent":
        values = [
            NAN if done is None else float(is_correct(p, label) and is_correct(q, OTHER_SIDE.get(str(label))))
            for (p, _, q, done), label in zip(order_verdicts(results), results["label"], strict=True)
        ]
    else:
        raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURES)}")
    return pd.Series(values, index=results.index, dtype=float)


def consistent(results: pd.DataFrame) -> np.ndarray:
    """Per pair judged in both orders: True when both orders prefer the same text (strictly, right or wrong)."""
    return np.array(
        [{p, q} == {"a", "b"} for p, _, q, done in order_verdicts(scored(results)) if done is not None], dtype=bool
    )


def position_consistency(results: pd.DataFrame) -> float:
    """Share of pairs judged in both orders that were judged consistently; NaN when none was."""
    return _mean(consistent(results))


def a_preference(results: pd.DataFrame) -> float:
    """Share of parsed per-order verdicts that prefer A (ties count as parsed); NaN when nothing parsed."""
    return a_share(parsed_sides(results))


def parsed_sides(results: pd.DataFrame) -> list[object]:
    """The preferred side of every per-order verdict that parses (None for a tie), original orders
    then swapped, over the rows that count (:func:`scored`)."""
    verdicts = order_verdicts(scored(results))
    return [p for p, ok, _, _ in verdicts if ok] + [q for _, _, q, ok in verdicts if ok]


def reasoning_agreement_rate(results: pd.DataFrame) -> tuple[float, int]:
    """The share of per-order verdicts whose eval side (``*_eval_side``) their scores prefer, and how
    many name a side; ``(nan, 0)`` when none does (baselines write no eval)."""
    results = scored(results)
    sides = _column(results, "original_eval_side") + _column(results, "swapped_eval_side")
    preferred = _column(results, "original_preferred", "preferred") + _column(results, "swapped_preferred")
    named = [p == side for side, p in zip(sides, preferred, strict=True) if side is not None]
    return _mean(named), len(named)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of the mean of ``values``, seeded
    (``scipy.stats.bootstrap``); ``(nan, nan)`` for no values."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size < 2:  # one value: every resample is that value (scipy wants two)
        return (NAN, NAN) if data.size == 0 else (float(data[0]),) * 2
    interval = bootstrap(
        (data,), np.mean, n_resamples=n_bootstrap, confidence_level=confidence, method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return float(interval.low), float(interval.high)


METRIC_COLUMNS: tuple[str, ...] = (
    "n", "too_long", "accuracy", "ci_low", "ci_high", "order_consistent_accuracy", "a_preference", "consistency",
    "format", "reasoning_agreement", "n_reasoned",
)  # fmt: skip


def metric_row(results: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, float | int]:
    """Every rate of the module docstring over the judged pairs, keyed by :data:`METRIC_COLUMNS`."""
    kept = scored(results)
    hits = correct(kept).astype(float)
    low, high = bootstrap_ci(hits, n_bootstrap=n_bootstrap, seed=seed)
    agreement, n_reasoned = reasoning_agreement_rate(kept)
    return {
        "n": int(len(kept)),
        "too_long": len(results) - len(kept),
        "accuracy": _mean(hits),
        "ci_low": low,
        "ci_high": high,
        "order_consistent_accuracy": order_consistent_accuracy(kept),
        "a_preference": a_preference(kept),
        "consistency": position_consistency(kept),
        "format": format_compliance(kept),
        "reasoning_agreement": agreement,
        "n_reasoned": n_reasoned,
    }


def summarize(
    results: pd.DataFrame, by: str | Sequence[str] | None = None, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0
) -> pd.DataFrame:
    """One :func:`metric_row` per group of ``by`` (sorted; missing values group as "unknown"), after
    the group columns; one overall row when ``by`` is None. ``seed`` is the same for every group.
    KeyError for a ``by`` column that ``results`` lacks.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    if not keys:
        return pd.DataFrame([metric_row(results, n_bootstrap, seed)])
    missing = [k for k in keys if k not in results]
    if missing:
        raise KeyError(f"results have no column(s) {', '.join(missing)} to group by")
    frame = results.assign(**{k: results[k].apply(lambda v: "unknown" if is_missing(v) else v) for k in keys})
    rows = [
        {**dict(zip(keys, values, strict=True)), **metric_row(group, n_bootstrap, seed)}
        for values, group in frame.groupby(keys, sort=True, dropna=False)
    ]
    return pd.DataFrame(rows)


def breakdowns(
    results: pd.DataFrame,
    columns: Sequence[str] = BREAKDOWNS,
    extra: Sequence[str] = (),
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """``{"overall": ..., column: ...}`` tables of :func:`summarize`, each also grouped by ``extra``
    columns (e.g. ``("judge",)``); columns absent from the results are left out."""
    extra = [c for c in extra if c in results]
    tables = {"overall": summarize(results, extra or None, n_bootstrap, seed)}
    for column in columns:
        if column in results:
            tables[column] = summarize(results, [*extra, column], n_bootstrap, seed)
    return tables


def accuracy_table(
    results: pd.DataFrame, rows: str = "judge", columns: str = "benchmark", digits: int = 1
) -> pd.DataFrame:
    """A paper-style table: accuracy in percent with its 95% interval, ``rows`` (in evaluation order) x ``columns``."""
    table = summarize(results, [rows, columns])
    table["cell"] = [
        f"{100 * a:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
        for a, lo, hi in zip(table["accuracy"], table["ci_low"], table["ci_high"], strict=True)
    ]
    wide = table.pivot(index=rows, columns=columns, values="cell")
    wide.columns.name = None
    return wide.reindex([r for r in dict.fromkeys(results[rows]) if r in wide.index])


PAIR_KEYS: tuple[str, ...] = ("id", "n_exemplars")  # one judgement per pair and exemplar count
PAIRED_COLUMNS: tuple[str, ...] = (
    "baseline", "group", "n", "model_accuracy", "baseline_accuracy", "difference", "diff_low", "diff_high",
)  # fmt: skip


def paired_comparison(
    results: pd.DataFrame,
    model: str,
    baselines: Sequence[str],
    by: str | None = "negative_kind",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    measure: str = "accuracy",
) -> pd.DataFrame:
    """``model``'s :func:`pair_hits` minus each baseline's on the pairs (:data:`PAIR_KEYS`) both
    judged, with a paired bootstrap 95% interval of the difference (both judges resampled on the same pairs).

    ``results`` need ``judge`` and the :data:`PAIR_KEYS` columns (else KeyError from pandas);
    ``baselines`` absent from them are left out; ``by``: a breakdown column beside the ``"all"`` row;
    ``measure``: :data:`MEASURES` (ValueError otherwise; pairs it leaves NaN are left out), held in
    the ``*_accuracy`` columns.
    Returns rows of :data:`PAIRED_COLUMNS`, empty when ``model`` judged nothing.
    """
    group_by = [by] if by else []
    results = scored(results)
    mine = results[results["judge"] == model]
    if mine.empty:
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    mine = mine.assign(hit=pair_hits(mine, measure))[[*PAIR_KEYS, "hit", *group_by]]
    rows = []
    for baseline in baselines:
        theirs = results[results["judge"] == baseline]
        if theirs.empty:
            continue
        theirs = theirs.assign(hit=pair_hits(theirs, measure))[[*PAIR_KEYS, "hit"]]
        joined = mine.merge(theirs, on=list(PAIR_KEYS), suffixes=("_m", "_b")).dropna(subset=["hit_m", "hit_b"])
        groups = [("all", joined)]
        if by:
            labels = joined[by].apply(lambda v: "unknown" if is_missing(v) else str(v))
            groups += [(str(g), part) for g, part in joined.groupby(labels, sort=True)]
        for group, part in groups:
            diff = (part["hit_m"] - part["hit_b"]).to_numpy()
            low, high = bootstrap_ci(diff, n_bootstrap=n_bootstrap, seed=seed)
            rows.append(
                [baseline, group, int(len(part)), _mean(part["hit_m"]), _mean(part["hit_b"]), _mean(diff), low, high]
            )
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


GOAL_FORMAT = 0.99  # at least 99% of per-order verdicts parse
GOAL_A_PREFERENCE = (0.4, 0.6)  # no position bias in the parsed verdicts of a trained stage
GOAL_ORDER_CONSISTENT = 0.90  # the persona benchmark's bar for the most-trained stage
GOAL_CRITERIA_RECALL = 0.8  # share of the persona's true operators its <criteria> names
STAGE_LABELS: dict[str, str] = {"base": "rm-base", "sft": "rm-sft", "rft": "rm-rft"}  # the stages' judge names
TRAINED_STAGES: tuple[str, ...] = (STAGE_LABELS["sft"], STAGE_LABELS["rft"])  # in training order
GOAL_COLUMNS: tuple[str, ...] = ("goal", "value", "interval", "target", "met", "decisive")


def goal_key(goal: str) -> str:
    """A goal's stable key: its name before the measured part in parentheses, in snake case (what
    the headline metrics and the regression gate name it by).

    >>> goal_key("order-consistent accuracy: rm-sft - rm-base (n=32; 0.781 vs 0.000)")
    'order_consistent_accuracy_rm_sft_rm_base'
    """
    return re.sub(r"[^a-z0-9]+", "_", goal.split(" (")[0].lower()).strip("_")


def _difference_goal(
    results: pd.DataFrame, model: str, other: str, measure: str, what: str, target: str, n_bootstrap: int, seed: int
) -> tuple[object, ...]:
    """A :data:`GOAL_COLUMNS` row: ``model`` minus ``other`` on shared pairs against ``target``
    (``> 0``, ``>= 0`` or ``interval > 0``)."""
    paired = paired_comparison(results, model, [other], None, n_bootstrap, seed, measure)
    if paired.empty or int(paired.iloc[0]["n"]) == 0:
        return f"{what}: {model} - {other} (not measured: no pair judged by both)", NAN, "", target, False, False
    row = paired.iloc[0]
    diff, low, high = float(row["difference"]), float(row["diff_low"]), float(row["diff_high"])
    met = {"> 0": diff > 0, ">= 0": diff >= 0, "interval > 0": low > 0}[target]
    goal = (
        f"{what}: {model} - {other} (n={int(row['n'])}; {row['model_accuracy']:.3f} vs {row['baseline_accuracy']:.3f})"
    )
    return goal, round(diff, 4), f"[{low:.3f}, {high:.3f}]", target, bool(met), bool(low > 0)


def _rate_goal(what: str, value: float, low: float, high: float | None = None) -> tuple[object, ...]:
    """A :data:`GOAL_COLUMNS` row on one rate, met when it is at least ``low`` (and at most ``high``); NaN is not met."""
    met = bool(low <= value and (high is None or value <= high))
    return what, round(value, 4), "", f">= {low}" if high is None else f"in [{low}, {high}]", met, met


def _stage_goals(
    results: pd.DataFrame, stages: Sequence[str], position: bool, steps: Sequence[str], n_bootstrap: int, seed: int
) -> tuple[list[tuple[object, ...]], str]:
    """The per-stage rate goals and stage-to-stage steps, and the most-trained stage that ran."""
    rows = []
    for stage in [s for s in stages if s in TRAINED_STAGES]:
        mine = results[results["judge"] == stage]
        suffix = "" if len(mine) else " (not run)"
        rows.append(_rate_goal(f"format compliance, {stage}{suffix}", format_compliance(mine), GOAL_FORMAT))
        if position:
            rows.append(_rate_goal(f"A-preference, {stage}{suffix}", a_preference(mine), *GOAL_A_PREFERENCE))
    what = "order-consistent accuracy"
    for earlier, later, target in zip(stages, stages[1:], steps, strict=False):
        rows.append(_difference_goal(results, later, earlier, "order_consistent", what, target, n_bootstrap, seed))
    present = [s for s in stages if s in set(results.get("judge", pd.Series(dtype=object)))]
    return rows, present[-1] if present else stages[-1]


def reference_goals(
    results: pd.DataFrame,
    stages: Sequence[str] = tuple(STAGE_LABELS.values()),
    baseline: str = "char-ngram",
    evidence_baseline: str = "evidence-lr",
    benchmark: str = "sotu",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """The reference run's targets (issue 12) as rows of :data:`GOAL_COLUMNS`, over pooled held-out
    pairs of one exemplar count: each trained stage's format compliance and A-preference;
    order-consistent accuracy rising stage by stage (the last step's 95% paired interval above 0);
    the most-trained stage that ran at least as accurate as ``baseline`` on ``benchmark`` and more
    accurate than ``evidence_baseline`` overall. Differences are paired (:func:`paired_comparison`);
    ``decisive``: the interval lies above 0. A goal that cannot be measured is not met and says so.
    """
    steps = ["> 0"] * (len(stages) - 2) + ["interval > 0" if len(stages) > 2 else "> 0"]
    rows, focus = _stage_goals(results, stages, True, steps, n_bootstrap, seed)
    on_benchmark = results[results["benchmark"] == benchmark] if "benchmark" in results else results.iloc[:0]
    what = f"accuracy on {benchmark}"
    rows.append(_difference_goal(on_benchmark, focus, baseline, "accuracy", what, ">= 0", n_bootstrap, seed))
    rows.append(_difference_goal(results, focus, evidence_baseline, "accuracy", "accuracy", "> 0", n_bootstrap, seed))
    return pd.DataFrame(rows, columns=list(GOAL_COLUMNS))


def persona_goals(
    results: pd.DataFrame,
    criteria_recall: Mapping[str, float],
    pairwise: bool,
    stages: Sequence[str] = tuple(STAGE_LABELS.values()),
    baseline: str = "char-ngram",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """The persona benchmark's targets as rows of :data:`GOAL_COLUMNS`, over held-out persona pairs
    of one exemplar count: each trained stage's format compliance and (``pairwise`` only: a
    pointwise judge has no position) A-preference; order-consistent accuracy of SFT above base (95%
    paired interval above 0) and RFT at least SFT; the most-trained stage that ran at least
    :data:`GOAL_ORDER_CONSISTENT` order-consistent, at least as accurate as ``baseline``, and its
    ``criteria_recall`` (judge -> mean recall,
    :func:`persrm_lib.evaluate.persona_reasoning.reasoning_metrics`; missing: not met) at least
    :data:`GOAL_CRITERIA_RECALL`.
    """
    rows, focus = _stage_goals(results, stages, pairwise, ("interval > 0", ">= 0"), n_bootstrap, seed)
    oc = order_consistent_accuracy(results[results["judge"] == focus])
    rows.append(_rate_goal(f"order-consistent accuracy, {focus}", oc, GOAL_ORDER_CONSISTENT))
    rows.append(_difference_goal(results, focus, baseline, "accuracy", "accuracy", ">= 0", n_bootstrap, seed))
    recall = float(criteria_recall.get(focus, NAN))
    rows.append(_rate_goal(f"criteria recall, {focus}", recall, GOAL_CRITERIA_RECALL))
    return pd.DataFrame(rows, columns=list(GOAL_COLUMNS))
