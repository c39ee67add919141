"""The GRPO reward of PersRM-R1 (paper §3.3): sparse, from the ONE verdict rule.

``-1`` when the completion breaks the output format, ``0`` when it parses but does not score the
labelled response strictly higher (ties are wrong), ``+1`` when it does. The reward reads every
completion through :func:`persrm_lib.core.verdict.read_verdict` and its
:meth:`~persrm_lib.core.verdict.Verdict.outcome`; there is no second parser and no second rule.

:func:`persrm_reward` has TRL's reward signature (``label`` arrives as a dataset column).
During training :class:`persrm_lib.train.logs.RewardTracker` wraps it: it records the
:func:`outcome_shares` per step and writes every sampled completion to ``rft/completions.jsonl``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import verdict

# The outcome names in outcome order (-1, 0, +1): format_violation, wrong, correct.
OUTCOME_NAMES: tuple[str, ...] = tuple(verdict.OUTCOME_NAMES[k] for k in sorted(verdict.OUTCOME_NAMES))

Completion = str | Sequence[Mapping[str, Any]]


def completion_text(completion: Completion) -> object:
    """The text to parse: a plain completion as is; for a conversational completion (a list of
    ``{"role", "content"}`` messages) the content of the last assistant message.

    Anything else (no assistant message, a non-text content) is returned as an object that the
    parser reports as a format violation.

    >>> completion_text([{"role": "assistant", "content": "<criteria>..."}])
    '<criteria>...'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        for message in reversed(completion):
            if isinstance(message, Mapping) and message.get("role") == "assistant":
                return message.get("content")
        return None
    return completion


def persrm_reward(completions: Sequence[Completion], label: Sequence[str], **kwargs: Any) -> list[float]:
    """Score completions with the paper's sparse reward (:meth:`persrm_lib.core.verdict.Verdict.outcome`).

    Args:
        completions: plain strings, or conversational completions (lists of role/content messages;
            the last assistant message is read).
        label: the labelled (chosen) response of each pair, ``"a"`` or ``"b"``, one per completion.
        **kwargs: other dataset columns and trainer extras, ignored.

    Returns:
        One float per completion: -1.0 format violation, 0.0 wrong or tied preference, 1.0 correct.

    Raises:
        ValueError: when ``label`` and ``completions`` differ in length or a label is not a/b.

    >>> ok = "<criteria>c</criteria><eval>e</eval><scores>[8, 3]</scores>"
    >>> persrm_reward([ok, ok, "8 vs 3"], label=["a", "b", "a"])
    [1.0, 0.0, -1.0]
    """
    if len(completions) != len(label):
        raise ValueError(f"persrm_reward got {len(completions)} completions but {len(label)} labels")
    return [
        float(verdict.read_verdict(completion_text(c)).outcome(lab)) for c, lab in zip(completions, label, strict=True)
    ]


def outcome_shares(rewards: Sequence[float]) -> dict[str, float]:
    """Share of each outcome (``format_violation``, ``wrong``, ``correct``) among rewards.

    >>> outcome_shares([1.0, 0.0, -1.0, 1.0])
    {'format_violation': 0.25, 'wrong': 0.25, 'correct': 0.5}
    """
    if not rewards:
        return {name: 0.0 for name in OUTCOME_NAMES}
    return {
        verdict.OUTCOME_NAMES[k]: sum(1 for r in rewards if r == k) / len(rewards)
        for k in sorted(verdict.OUTCOME_NAMES)
    }
