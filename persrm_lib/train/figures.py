"""The figures of the training logs (PersRM-R1 §5.1: training dynamics), from
:func:`persrm_lib.train.logs.read_log` frames. Each returns a matplotlib ``Figure`` and raises
``ValueError`` naming the column when the log has nothing to draw; ``smooth`` is a rolling-mean
window over logged steps (1: raw curves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..core.reward import OUTCOME_NAMES
from .logs import empty_columns

OUTCOME_COLOURS: dict[str, str] = {"format_violation": "tab:red", "wrong": "tab:orange", "correct": "tab:green"}


def _require(log: pd.DataFrame, *columns: str) -> None:
    blank = empty_columns(log, columns)
    if blank:
        raise ValueError(f"the log has no values in column(s) {', '.join(blank)}")


def _curve(ax: Any, log: pd.DataFrame, column: str, smooth: int, marker: str = "o", **style: Any) -> None:
    ax.plot(log["step"], log[column].rolling(smooth, min_periods=1).mean(), marker=marker, ms=3, **style)


def _figure(width: float = 6, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib import pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, 3.2), squeeze=False)


def _panel(log: pd.DataFrame, *columns: str, width: float = 6) -> tuple[Any, Any]:
    """A one-panel figure and its axes, once ``columns`` have values."""
    _require(log, "step", *columns)
    fig, axes = _figure(width)
    return fig, axes[0, 0]


def plot_sft_loss(log: pd.DataFrame, smooth: int = 1, title: str = "SFT loss") -> Any:
    """The SFT loss (token-level cross-entropy of the trace given the prompt) per optimiser step."""
    fig, ax = _panel(log, "loss")
    _curve(ax, log, "loss", smooth)
    ax.set(xlabel="optimiser step", ylabel="SFT loss (completion tokens)", title=title)
    return fig


def plot_grpo_reward(log: pd.DataFrame, smooth: int = 1, title: str = "GRPO reward") -> Any:
    """The mean sparse reward per GRPO step (−1 violation, 0 wrong, +1 correct) and, on the
    evaluated steps, the greedy validation accuracy rescaled to the reward's range (2·acc − 1)."""
    fig, ax = _panel(log, "reward")
    _curve(ax, log, "reward", smooth, label="mean reward")
    if not empty_columns(log, ["validation_accuracy"]):
        validated = log.dropna(subset=["validation_accuracy"])  # evaluated every grpo.eval_every steps only
        rescaled = validated.assign(rescaled=2 * validated["validation_accuracy"] - 1)
        _curve(ax, rescaled, "rescaled", 1, marker="s", label="validation accuracy (rescaled to ±1)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylim=(-1.05, 1.05), xlabel="GRPO step", ylabel="reward", title=title)
    ax.legend(fontsize=8)
    return fig


def plot_grpo_outcomes(log: pd.DataFrame, smooth: int = 1, title: str = "Outcome shares") -> Any:
    """Per GRPO step, the shares of sampled completions that broke the format, preferred the wrong
    response, or the labelled one."""
    fig, ax = _panel(log, *OUTCOME_NAMES)
    for name in OUTCOME_NAMES:
        _curve(ax, log, name, smooth, color=OUTCOME_COLOURS[name], label=name.replace("_", " "))
    ax.set(ylim=(-0.02, 1.02), xlabel="GRPO step", ylabel="share of sampled completions", title=title)
    ax.legend(fontsize=8, title="outcome")
    return fig


def plot_grpo_order_robustness(log: pd.DataFrame, smooth: int = 1, title: str = "Position bias during GRPO") -> Any:
    """Per GRPO step: the share of parsed sampled verdicts that prefer response A (``a_preference``,
    the goal band shaded), and the share of groups whose rewards have no spread (no gradient): TRL's
    per-prompt groups (``frac_reward_zero_std``) and, with ``grpo.joint_orders``, the joint groups
    of both orders (``joint_frac_reward_zero_std``; EIS-GRPO, arXiv 2505.13346)."""
    from ..evaluate.metrics import GOAL_A_PREFERENCE

    fig, ax = _panel(log, "a_preference", width=6.5)
    low, high = GOAL_A_PREFERENCE
    ax.axhspan(low, high, color="grey", alpha=0.15, lw=0, label=f"no position bias ({low}-{high})")
    _curve(ax, log, "a_preference", smooth, label="A-preference (sampled)")
    for column, label in (
        ("frac_reward_zero_std", "zero-spread groups, per prompt"),
        ("joint_frac_reward_zero_std", "zero-spread groups, both orders jointly"),
    ):
        if not empty_columns(log, [column]):
            _curve(ax, log, column, smooth, marker="s", ls="--", label=label)
    ax.set(ylim=(-0.02, 1.02), xlabel="GRPO step", ylabel="share", title=title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def plot_grpo_length_kl(log: pd.DataFrame, smooth: int = 1) -> Any:
    """Mean completion length (tokens) and KL to the reference model per GRPO step, one panel each
    for the columns the log holds."""
    panels = [c for c in ("completion_length", "kl") if not empty_columns(log, [c])]
    if not panels:
        raise ValueError("the log has no values in column(s) completion_length, kl")
    fig, axes = _figure(4.2 * len(panels), len(panels))
    for ax, column in zip(axes[0], panels, strict=True):
        _curve(ax, log, column, smooth)
        ax.set(xlabel="GRPO step", ylabel=column.replace("_", " "), title=column.replace("_", " "))
    fig.tight_layout()
    return fig


def plot_grpo_starts(logs: Mapping[str, pd.DataFrame], smooth: int = 1) -> Any:
    """GRPO runs side by side (e.g. ``{"from SFT": rft, "from base": rft_from_base}``, paper §5.1):
    the mean reward, and the share of format violations where every run logged it (``ValueError``:
    fewer than two runs, or a run without ``reward`` values)."""
    if len(logs) < 2:
        raise ValueError(f"need two GRPO logs to compare, got {len(logs)}: {', '.join(logs) or 'none'}")
    for log in logs.values():
        _require(log, "step", "reward")
    fig, axes = _figure(9, 2)
    violations = all(not empty_columns(log, ["format_violation"]) for log in logs.values())
    for start, log in logs.items():
        _curve(axes[0, 0], log, "reward", smooth, label=start)
        if violations:
            _curve(axes[0, 1], log, "format_violation", smooth, label=start)
    axes[0, 0].set(ylim=(-1.05, 1.05), xlabel="GRPO step", ylabel="mean reward", title="Reward")
    axes[0, 0].legend(fontsize=8)
    if violations:
        axes[0, 1].set(ylim=(-0.02, 1.02), xlabel="GRPO step", ylabel="share", title="Format violations")
        axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    return fig
