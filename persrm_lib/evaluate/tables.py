"""Notebook 05's tables and figures (PersRM-R1 §4, Table 2 style): accuracy with 95% intervals by
benchmark, exemplar count and negative strategy, saved as CSV and GitHub markdown; the per-pair
results (:func:`persrm_lib.evaluate.records.write_per_pair`); bar and paired-difference plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import runfiles
from . import metrics
from .metrics import is_missing
from .records import write_per_pair

PAPER_ACCURACY = pd.DataFrame(
    {
        "model": ["Qwen2.5-7B SFT+RFT", "Qwen2.5-3B SFT+RFT", "7B SFT only", "7B base"],
        "CCAT": [93.8, 91.8, 86.1, 77.6],
        "CMCC": [94.6, 92.2, 87.7, 75.8],
    }
)  # PersRM-R1 (arXiv 2508.14076) Table 2, three exemplars


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub pipe table (no dependency on ``tabulate``); NaN cells are written as ``–``.

    >>> print(to_markdown(pd.DataFrame({"x": [1.5]}, index=["j"])))
    |   | x |
    |---|---|
    | j | 1.5 |
    """
    table = frame.reset_index() if index else frame
    header = ["" if index and i == 0 and table.columns[0] == "index" else str(c) for i, c in enumerate(table.columns)]
    lines = ["| " + " | ".join(h if h else " " for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join("–" if is_missing(v) else str(v) for v in row) + " |")
    return "\n".join(lines)


def write_tables(
    results: pd.DataFrame, eval_dir: str | Path, main_k: int, n_bootstrap: int = metrics.N_BOOTSTRAP, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The paper-style tables by name, each saved as ``<name>.csv`` and ``<name>.md`` under ``eval_dir``
    (the per-pair rows go to ``per_pair.csv``, :func:`persrm_lib.evaluate.records.write_per_pair`).

    - ``accuracy_by_benchmark``: judges x benchmark, at ``main_k`` exemplars;
    - ``accuracy_by_exemplars``: judges x exemplar count (benchmarks pooled);
    - ``accuracy_by_negative_kind``: judges x negative-sampling strategy, at ``main_k``;
    - ``summary``: every breakdown, long, with :data:`persrm_lib.evaluate.metrics.METRIC_COLUMNS`.
    """
    eval_dir = Path(eval_dir)
    main = results[results["n_exemplars"] == main_k]
    tables = {
        "accuracy_by_benchmark": metrics.accuracy_table(main, "judge", "benchmark"),
        "accuracy_by_exemplars": metrics.accuracy_table(results, "judge", "n_exemplars"),
        "accuracy_by_negative_kind": metrics.accuracy_table(
            main.fillna({"negative_kind": "unknown"}), "judge", "negative_kind"
        ),
    }
    by = metrics.breakdowns(results, extra=("judge",), n_bootstrap=n_bootstrap, seed=seed)
    summary = pd.concat([t.assign(breakdown=c).rename(columns={c: "value"}) for c, t in by.items()], ignore_index=True)
    summary["value"] = summary["value"].fillna("all")  # the overall rows
    tables["summary"] = summary[["breakdown", "value", "judge", *metrics.METRIC_COLUMNS]]
    for name, table in tables.items():
        write_table(table.round(4) if name == "summary" else table, eval_dir, name, index=name != "summary")
    write_per_pair(results, eval_dir / runfiles.PER_PAIR_FILE)
    return tables


def write_table(table: pd.DataFrame, folder: str | Path, name: str, index: bool = True) -> None:
    """Save ``table`` as ``<folder>/<name>.csv`` and ``<name>.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv", index=index)
    (folder / f"{name}.md").write_text(to_markdown(table, index=index) + "\n")


def plot_paired_differences(paired: pd.DataFrame, ax: Any, model: str = "the reward model") -> Any:
    """:func:`persrm_lib.evaluate.metrics.paired_comparison` rows on the matplotlib axis ``ax`` (returned):
    the difference per group and baseline with its paired 95% interval; ``model`` names the x axis."""
    groups = list(dict.fromkeys(paired["group"]))
    baselines = list(dict.fromkeys(paired["baseline"]))
    step = 0.8 / max(1, len(baselines))
    for b, baseline in enumerate(baselines):
        rows = paired[paired["baseline"] == baseline].set_index("group").reindex(groups)
        ys = np.arange(len(groups)) - 0.4 + step * (b + 0.5)
        low = (rows["difference"] - rows["diff_low"]).clip(lower=0)
        high = (rows["diff_high"] - rows["difference"]).clip(lower=0)
        ax.errorbar(rows["difference"], ys, xerr=[low, high], fmt="o", ms=4, capsize=2, lw=1, label=baseline)
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel(f"accuracy of {model} minus baseline (shared pairs)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return ax


def plot_accuracy_bars(table: pd.DataFrame, order: Sequence[str], ax: Any, group: str = "benchmark") -> Any:
    """Grouped bars of accuracy with 95% interval whiskers on the matplotlib axis ``ax`` (returned):
    :func:`persrm_lib.evaluate.metrics.summarize` rows per judge of ``order`` (left to right; an
    absent judge leaves a gap), one bar per value of ``group``."""
    groups = sorted(table[group].unique(), key=str)
    width = 0.8 / max(1, len(groups))
    for g, value in enumerate(groups):
        rows = table[table[group] == value].set_index("judge")
        xs = [i for i, judge in enumerate(order) if judge in rows.index]
        if not xs:
            continue
        picked = rows.loc[[order[i] for i in xs]]
        positions = np.array(xs, dtype=float) - 0.4 + width * (g + 0.5)
        bars = ax.bar(positions, picked["accuracy"], width=width, label=str(value))
        low = (picked["accuracy"] - picked["ci_low"]).clip(lower=0)
        high = (picked["ci_high"] - picked["accuracy"]).clip(lower=0)
        ax.errorbar(positions, picked["accuracy"], yerr=[low, high], fmt="none", ecolor="black", capsize=2, lw=1)
        ax.bar_label(bars, labels=[f"{a:.2f}" for a in picked["accuracy"]], fontsize=6, padding=1)
    ax.set_xticks(range(len(order)), list(order))
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.legend(title=group, fontsize=8)
    return ax


ORDER_ROBUSTNESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("format", "format"),
    ("accuracy", "accuracy"),
    ("order_consistent_accuracy", "order-consistent acc."),
    ("a_preference", "A-preference"),
    ("reasoning_agreement", "reasoning agreement"),
)  # (metric_row column, legend label), left to right within a judge


def plot_order_robustness(table: pd.DataFrame, order: Sequence[str], ax: Any) -> Any:
    """The :data:`ORDER_ROBUSTNESS_COLUMNS` of :func:`persrm_lib.evaluate.metrics.summarize` rows as
    grouped bars per judge of ``order`` present in ``table``, on the matplotlib axis ``ax``
    (returned), the A-preference target band shaded; an undefined rate leaves a gap, no judge a note."""
    judges = [j for j in order if "judge" in table and j in set(table["judge"])]
    if not judges:
        ax.text(0.5, 0.5, "no generative judge ran", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    rows = table.set_index("judge").loc[judges]
    width = 0.8 / len(ORDER_ROBUSTNESS_COLUMNS)
    low, high = metrics.GOAL_A_PREFERENCE
    ax.axhspan(low, high, color="grey", alpha=0.15, lw=0, label=f"A-preference target {low}-{high}")
    for c, (column, label) in enumerate(ORDER_ROBUSTNESS_COLUMNS):
        values = pd.to_numeric(rows[column], errors="coerce") if column in rows else pd.Series(np.nan, index=judges)
        positions = np.arange(len(judges)) - 0.4 + width * (c + 0.5)
        bars = ax.bar(positions, values.fillna(0.0), width=width, label=label)
        ax.bar_label(bars, labels=["–" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=6, padding=1)
    ax.set_xticks(range(len(judges)), judges)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of pairs / verdicts")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return ax
