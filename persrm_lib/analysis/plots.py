"""The figures of notebook 07_behavior_analysis (PersRM-R1 §5.2–5.3), drawn from the tallies; each returns
a matplotlib figure (matplotlib and seaborn are imported inside, so the analysis modules load without them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .classifiers import BEHAVIORS


def _step_axis(ax: Any) -> None:
    """GRPO steps on the x axis, as integers, and a light grid."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("GRPO step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def plot_behaviors_over_steps(summaries: Mapping[str, pd.DataFrame]) -> Any:
    """One panel per classifier: mean count per trace of each behaviour against the GRPO step
    (``summaries``: classifier name -> :func:`persrm_lib.analysis.tallies.summarize_by` per ``step``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 3.8), squeeze=False, sharey=True)
    for ax, (name, summary) in zip(axes[0], summaries.items(), strict=True):
        for behavior in BEHAVIORS:
            rows = summary[summary["behavior"] == behavior]
            ax.plot(rows["step"], rows["mean_count"], marker="o", label=behavior.replace("_", " "))
        failed = int(summary["n_failed"].sum())
        ax.set_title(f"{name} classifier" + (f" ({failed} counts failed to parse)" if failed else ""))
        if summary["mean_count"].isna().all():
            ax.text(0.5, 0.5, "no count parsed", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel("mean count per trace")
        _step_axis(ax)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_stage_comparison(summary: pd.DataFrame, title: str, stage_order: Sequence[str] | None = None) -> Any:
    """Grouped bars: mean count per trace of each behaviour, per stage (teacher, base, sft, rft)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.8))
    data = summary.assign(behavior=summary["behavior"].str.replace("_", " "))
    order = [s for s in (stage_order or sorted(set(data["stage"]))) if s in set(data["stage"])]
    sns.barplot(data=data, x="behavior", y="mean_count", hue="stage", hue_order=order, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("mean count per trace")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_criteria_over_steps(by_step: pd.DataFrame) -> Any:
    """Three panels over GRPO steps: criteria diversity, new criteria, re-prioritisation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot(by_step["step"], by_step["distinct_criteria"], marker="o", label="distinct criteria")
    axes[0].plot(by_step["step"], by_step["entropy_bits"], marker="s", label="entropy (bits)")
    axes[0].set_title("criteria diversity")
    axes[1].plot(by_step["step"], by_step["share_with_new"], marker="o", label="outputs with a new criterion")
    axes[1].plot(by_step["step"], by_step["accuracy"], marker="s", label="accuracy (all outputs)")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_title("new stylistic criteria")
    axes[2].plot(by_step["step"], by_step["mean_order_rho"], marker="o", label="rank corr. with SFT order")
    axes[2].plot(by_step["step"], by_step["share_first_changed"], marker="s", label="first criterion changed")
    axes[2].set_ylim(-1.05, 1.05)
    axes[2].set_title("re-prioritised criteria")
    for ax in axes:
        ax.legend(fontsize=8)
        _step_axis(ax)
    fig.tight_layout()
    return fig
