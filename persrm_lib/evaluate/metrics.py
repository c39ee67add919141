"""Evaluation metrics over per-pair results (PersRM-R1 §4: accuracy tables, §5: analyses).

The input is the per-pair results table that :func:`persrm_lib.evaluate.cli.evaluate_pairs` builds,
one row per pair, with at least ``label``, ``preferred`` (``"a"``, ``"b"`` or None for a tie or a
format violation) and ``format_ok``; when the pair was also judged with A and B swapped,
``swapped_preferred`` and ``swapped_format_ok``. Breakdown columns: ``benchmark``,
``negative_kind``, ``positive_kind``, ``n_exemplars``, ``genre``.

- accuracy: the share of pairs whose labelled (chosen) response is scored strictly higher; ties
  and format violations are wrong (DESIGN.md; the rule is :func:`persrm_lib.core.verdict.is_correct`).
- format compliance: the share of verdicts that parse (both orders when swapped).
- position consistency: the share of swapped pairs on which the judge picks the same text in
  both orders (a tie or violation in either order is inconsistent).
- 95% intervals: percentile bootstrap over pairs, seeded (numpy), so a table is reproducible.

>>> import pandas as pd
>>> rows = pd.DataFrame({"label": ["a", "b", "a", "b"], "preferred": ["a", "b", None, "a"],
...                      "format_ok": [True, True, False, True], "benchmark": ["x", "x", "y", "y"]})
>>> accuracy(rows), format_compliance(rows)
(0.5, 0.75)
>>> summarize(rows, by="benchmark")[["benchmark", "n", "accuracy"]].to_dict("records")
[{'benchmark': 'x', 'n': 2, 'accuracy': 1.0}, {'benchmark': 'y', 'n': 2, 'accuracy': 0.0}]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.verdict import is_correct

BREAKDOWNS: tuple[str, ...] = ("benchmark", "negative_kind", "positive_kind", "n_exemplars", "genre")
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def correct(results: pd.DataFrame) -> np.ndarray:
    """Per pair: True when the labelled response was preferred strictly (ties/violations: False)."""
    return np.array(
        [
            is_correct(None if _missing(p) else p, lab)
            for p, lab in zip(results["preferred"], results["label"], strict=True)
        ],
        dtype=bool,
    )


def accuracy(results: pd.DataFrame) -> float:
    """Share of pairs judged correctly; NaN for an empty table."""
    return float(correct(results).mean()) if len(results) else float("nan")


def format_compliance(results: pd.DataFrame) -> float:
    """Share of verdicts that parse, counting the swapped verdicts where they exist."""
    values = [bool(v) for v in results["format_ok"]]
    if "swapped_format_ok" in results:
        values += [bool(v) for v in results["swapped_format_ok"] if not _missing(v)]
    return float(np.mean(values)) if values else float("nan")


def consistent(results: pd.DataFrame) -> np.ndarray:
    """Per swapped pair: True when both orders prefer the same text (a strict preference in both).

    In the swapped pair the author's text sits in the other slot, so "the same text" means the
    swapped verdict names the other letter. Pairs that were not swapped are left out.
    """
    if "swapped_format_ok" not in results:
        return np.array([], dtype=bool)
    out = []
    for p, q, done in zip(
        results["preferred"], results["swapped_preferred"], results["swapped_format_ok"], strict=True
    ):
        if _missing(done):
            continue
        out.append(not _missing(p) and not _missing(q) and {p, q} == {"a", "b"})
    return np.array(out, dtype=bool)


def position_consistency(results: pd.DataFrame) -> float:
    """Share of swapped pairs judged consistently; NaN when no pair was swapped."""
    values = consistent(results)
    return float(values.mean()) if len(values) else float("nan")


def share_prefers_a(results: pd.DataFrame) -> float:
    """Share of strict verdicts that prefer response A (0.5 when there is no position bias)."""
    strict = [p for p in results["preferred"] if not _missing(p) and p in ("a", "b")]
    return float(np.mean([p == "a" for p in strict])) if strict else float("nan")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded).

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
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_bootstrap, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def metric_row(results: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, float | int]:
    """Accuracy with its interval, format compliance, position consistency and A-share of a table."""
    hits = correct(results).astype(float)
    low, high = bootstrap_ci(hits, n_bootstrap=n_bootstrap, seed=seed)
    return {
        "n": int(len(results)),
        "accuracy": float(hits.mean()) if len(hits) else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "format": format_compliance(results),
        "consistency": position_consistency(results),
        "prefers_a": share_prefers_a(results),
    }


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
        A DataFrame with the group columns, then n, accuracy, ci_low, ci_high, format,
        consistency, prefers_a.
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

    Returns:
        Rows ``baseline, group, n, model_accuracy, baseline_accuracy, difference, diff_low,
        diff_high``; empty when ``model`` judged nothing.

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
    mine = results[results["judge"] == model].copy()
    if mine.empty:
        return pd.DataFrame(columns=columns)
    mine["hit"] = correct(mine).astype(float)
    rows = []
    for baseline in baselines:
        theirs = results[results["judge"] == baseline].copy()
        if theirs.empty:
            continue
        theirs["hit"] = correct(theirs).astype(float)
        keep = [*PAIR_KEYS, "hit", *([by] if by else [])]
        joined = mine[keep].merge(theirs[[*PAIR_KEYS, "hit"]], on=list(PAIR_KEYS), suffixes=("_m", "_b"))
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


GOAL_FORMAT = 0.99  # issue 7: at least 99% of verdicts parse
GOAL_CONSISTENCY = 0.90  # and at least 90% of swapped pairs are judged the same way


def reference_goals(
    results: pd.DataFrame,
    model: str,
    baseline: str = "char-ngram",
    by: str = "negative_kind",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """The reference run's goals, each with its measured value and whether it is met.

    ``model`` beats ``baseline`` on every value of ``by`` (the accuracy difference on shared pairs is
    above zero; ``decisive`` says whether its 95% interval also excludes zero), formats at least
    :data:`GOAL_FORMAT` of its verdicts and judges at least :data:`GOAL_CONSISTENCY` of swapped
    pairs consistently. A goal that cannot be measured (no shared pairs, nothing swapped) is not met.

    Returns:
        Rows ``goal, value, target, met, decisive``.
    """
    rows = []
    paired = paired_comparison(results, model, [baseline], by, n_bootstrap, seed)
    for _, row in paired[paired["group"] != "all"].iterrows():
        rows.append(
            {
                "goal": f"beats {baseline} on {by}={row['group']} (n={row['n']})",
                "value": round(float(row["difference"]), 4),
                "target": "> 0",
                "met": bool(row["difference"] > 0),
                "decisive": bool(row["diff_low"] > 0),
            }
        )
    if paired.empty:
        rows.append(
            {"goal": f"beats {baseline}", "value": float("nan"), "target": "> 0", "met": False, "decisive": False}
        )
    mine = results[results["judge"] == model]
    fmt = format_compliance(mine)  # NaN when the model judged nothing
    cons = position_consistency(mine)
    for goal, value, target in (
        ("format compliance", fmt, GOAL_FORMAT),
        ("position consistency", cons, GOAL_CONSISTENCY),
    ):
        met = bool(not np.isnan(value) and value >= target)
        rows.append(
            {"goal": goal, "value": round(float(value), 4), "target": f">= {target}", "met": met, "decisive": met}
        )
    return pd.DataFrame(rows, columns=["goal", "value", "target", "met", "decisive"])
