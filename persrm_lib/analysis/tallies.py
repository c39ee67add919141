"""Tallies of cognitive behaviours over traces (records as the stage owners' readers give them:
``completion``, and ``step`` and ``pair_id`` when present), classifier agreement, and notebook 07's
headline metrics. A failed count (``None``) stays missing in every table and is reported beside the
means, never averaged in as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.output_format import parse_output
from ..evaluate.records import plain as nan_to_none  # JSON-safe scalars, NaN as None
from .classifiers import BEHAVIORS, BehaviorClassifier, LLMBehaviorClassifier, RuleBasedBehaviorClassifier
from .criteria import SFTCriteria, accuracy_by_new_criteria, criteria_by_step, new_criteria_names


def reasoning_trace(completion: str) -> tuple[str, bool]:
    """The reasoning text of a completion (its ``<criteria>`` and ``<eval>`` when the format parses,
    else the raw completion: a model that breaks the format still reasons) and whether it parsed."""
    parsed = parse_output(completion)
    if parsed.ok:
        return f"{parsed.criteria}\n{parsed.evaluation}", True
    return completion, False


def behavior_counts(
    records: Sequence[Mapping[str, Any]], classifier: BehaviorClassifier, stage: str = "rft"
) -> pd.DataFrame:
    """One row per completion: ``stage, step, pair_id, format_ok, classifier`` and a count per
    behaviour (nullable integers: a missing value is a classifier failure)."""
    read = [reasoning_trace(r["completion"]) for r in records]
    counts = classifier.count_batch([text for text, _ in read]) if read else []
    rows = [
        [stage, r.get("step"), r.get("pair_id"), ok, classifier.name, *(count.get(b) for b in classifier.behaviors)]
        for r, (_, ok), count in zip(records, read, counts, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["stage", "step", "pair_id", "format_ok", "classifier", *classifier.behaviors])
    return frame.astype(dict.fromkeys(classifier.behaviors, "Int64"))


def summarize_by(counts: pd.DataFrame, by: str | Sequence[str] = "step") -> pd.DataFrame:
    """Long table per group and behaviour: mean count and share of traces showing it over the
    ``n_counted`` traces, and the ``n_failed`` ones beside them."""
    keys = [by] if isinstance(by, str) else list(by)
    behaviors = [b for b in BEHAVIORS if b in counts.columns]
    rows = []
    for group, frame in counts.groupby(keys, sort=True, dropna=False):
        for b in behaviors:
            values = frame[b].dropna().astype(float)
            rows.append(
                {
                    **dict(zip(keys, group, strict=True)),
                    "behavior": b,
                    "mean_count": float(values.mean()),  # pandas: NaN when empty
                    "share_present": float((values > 0).mean()),
                    "n_counted": int(len(values)),
                    "n_failed": int(frame[b].isna().sum()),
                }
            )
    return pd.DataFrame(rows)


def failure_counts(counts: pd.DataFrame) -> dict[str, int]:
    """Traces whose count failed (``None``), per behaviour."""
    return {b: int(counts[b].isna().sum()) for b in BEHAVIORS if b in counts.columns}


def agreement(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Agreement per behaviour of two :func:`behavior_counts` tables of the same records (rows
    matched by position; traces where either count failed left out): Cohen's kappa on presence
    (scikit-learn), Spearman and Pearson correlation on counts (SciPy), and a ``note`` for each NaN
    (kappa: one presence value throughout; correlations: constant counts or under 2 traces).

    Raises:
        ValueError: tables of different lengths.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second):
        raise ValueError(f"the two count tables have {len(first)} and {len(second)} rows; count the same traces")
    rows = []
    for b in [b for b in BEHAVIORS if b in first.columns and b in second.columns]:
        valid = first[b].notna().to_numpy() & second[b].notna().to_numpy()
        x, y = (table[b].to_numpy()[valid].astype(float) for table in (first, second))
        row: dict[str, Any] = {
            "behavior": b,
            "n": int(valid.sum()),
            "n_failed": int((~valid).sum()),
            "present_first": float((x > 0).mean()) if len(x) else math.nan,
            "present_second": float((y > 0).mean()) if len(y) else math.nan,
            "kappa": math.nan,
            "spearman": math.nan,
            "pearson": math.nan,
        }
        notes = []
        if len(x) < 2:
            notes.append(f"only {len(x)} trace(s) counted by both: no agreement statistic")
        else:
            px, py = (x > 0).astype(int), (y > 0).astype(int)
            if len(set(px) | set(py)) < 2:
                state = "present in every trace" if px[0] else "never occurs"
                notes.append(f"kappa undefined: the behaviour {state} for both classifiers (chance agreement is 1)")
            else:
                row["kappa"] = float(cohen_kappa_score(px, py))
            constant = [name for name, v in (("first", x), ("second", y)) if np.all(v == v[0])]
            if constant:
                notes.append(f"correlations undefined: counts are constant for the {' and '.join(constant)} classifier")
            else:
                row["spearman"] = float(spearmanr(x, y).statistic)
                row["pearson"] = float(pearsonr(x, y).statistic)
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


def behavior_examples(
    records: Sequence[Mapping[str, Any]], per_behavior: int = 2, max_chars: int = 240
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_behavior`` quoted units per behaviour (rule-based), with step and pair id; records
    in (step, pair id) order, each quoted for its first matching unit only, so examples spread."""
    clf = RuleBasedBehaviorClassifier()
    examples: dict[str, list[dict[str, Any]]] = {b: [] for b in BEHAVIORS}
    for record in sorted(records, key=lambda r: (r.get("step") or 0, str(r.get("pair_id")))):
        found = clf.matches(reasoning_trace(record["completion"])[0])
        for b in BEHAVIORS:
            if found[b] and len(examples[b]) < per_behavior:
                quote = found[b][0]
                quote = quote if len(quote) <= max_chars else quote[: max_chars - 3] + "..."
                examples[b].append({"step": record.get("step"), "pair_id": record.get("pair_id"), "quote": quote})
    return examples


def evenly_spaced(records: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` records spread evenly (deterministically) over the sequence; all when ``n <= 0``."""
    if n <= 0 or n >= len(records):
        return list(records)
    # distinct and increasing: n < len(records) spaces the points more than 1 apart before rounding
    return [records[i] for i in np.linspace(0, len(records) - 1, n).round().astype(int)]


def step_metrics(summary: pd.DataFrame, prefix: str) -> dict[str, Any]:
    """``<prefix>_<behavior>_first|last|all``: a per-step :func:`summarize_by`'s mean count at the
    first and last step and over all steps, NaN as ``None``."""
    out: dict[str, Any] = {}
    if summary.empty:
        return out
    first, last = summary["step"].min(), summary["step"].max()
    for behavior in BEHAVIORS:
        rows = summary[summary["behavior"] == behavior]
        if rows.empty:
            continue
        counted = rows["n_counted"].sum()
        overall = float((rows["mean_count"].fillna(0) * rows["n_counted"]).sum() / counted) if counted else math.nan
        out[f"{prefix}_{behavior}_first"] = nan_to_none(float(rows.loc[rows["step"] == first, "mean_count"].iloc[0]))
        out[f"{prefix}_{behavior}_last"] = nan_to_none(float(rows.loc[rows["step"] == last, "mean_count"].iloc[0]))
        out[f"{prefix}_{behavior}_all"] = nan_to_none(overall)
    return out


def headline_metrics(
    classifier: str,
    table: pd.DataFrame,
    sft: SFTCriteria,
    summaries: Mapping[str, pd.DataFrame],
    n_eval_stages: int,
    llm: LLMBehaviorClassifier | None = None,
    agreement_table: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Notebook 07's headline metrics (``metrics/07_behavior_analysis.json``), NaN as ``None``.

    ``table``: :func:`persrm_lib.analysis.criteria.criteria_table` of the RFT completions; ``summaries``:
    classifier name -> :func:`summarize_by` per step; ``llm`` and ``agreement_table`` when they ran.

    Returns counts (``n_completions, n_steps, n_sft_traces, n_eval_stages, sft_vocabulary_size,
    new_criteria_count``), shares and accuracies of the criteria behaviours over parsed outputs, the
    last step's criteria diversity, :func:`step_metrics` of each summary, and the LLM's queries and
    parse failures and the kappa and Spearman of each behaviour when given.
    """
    parsed = table[table["format_ok"]]
    by_step = criteria_by_step(table)
    acc = accuracy_by_new_criteria(table).set_index(["feature", "present"])["accuracy"]
    metrics: dict[str, Any] = {
        "classifier": classifier,
        "n_completions": len(table),
        "n_steps": len(set(table["step"])),
        "n_sft_traces": sft.n_traces,
        "format_ok_share": float(table["format_ok"].astype(bool).mean()),
        "n_eval_stages": n_eval_stages,
        "sft_vocabulary_size": len(sft.vocabulary),
        "new_criteria_count": len(new_criteria_names(table)),
        "share_with_new_criteria": float(parsed["has_new"].astype(bool).mean()),
        "accuracy_with_new_criteria": acc[("new criteria", True)],
        "accuracy_without_new_criteria": acc[("new criteria", False)],
        "accuracy_first_changed": acc[("first criterion changed", True)],
        "accuracy_first_kept": acc[("first criterion changed", False)],
        "mean_order_rho": float(parsed["order_rho"].mean()),
        "share_first_changed": float(parsed["first_changed"].dropna().astype(bool).mean()),
        "distinct_criteria_last_step": by_step["distinct_criteria"].iloc[-1] if len(by_step) else math.nan,
        "criteria_entropy_last_step": by_step["entropy_bits"].iloc[-1] if len(by_step) else math.nan,
    }
    for name, summary in summaries.items():
        metrics.update(step_metrics(summary, name))
    if llm is not None:
        metrics["llm_queries"] = llm.n_queries
        metrics["llm_parse_failures"] = len(llm.failures)
        metrics["llm_parse_failure_rate"] = len(llm.failures) / llm.n_queries if llm.n_queries else math.nan
    if agreement_table is not None:
        for row in agreement_table.itertuples():
            metrics[f"kappa_{row.behavior}"] = row.kappa
            metrics[f"spearman_{row.behavior}"] = row.spearman
    return {key: nan_to_none(value) for key, value in metrics.items()}
