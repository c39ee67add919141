"""The GRPO reward of PersRM-R1 (paper §3.3): sparse, from the ONE parser.

``-1`` when the completion breaks the output format, ``0`` when it parses but does not score the
labelled response strictly higher (ties are wrong), ``+1`` when it does. The reward reads every
completion through :func:`persrm_lib.core.output_format.outcome`; there is no second parser.

:func:`persrm_reward` has TRL's reward signature (``label`` arrives as a dataset column).
:class:`RewardTracker` wraps it for training: it records the share of each outcome per call (one
call per generation batch, i.e. per optimiser step with our settings), forwards the shares to
TRL's metric log, and appends every sampled completion to a JSONL file for notebook 07.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .output_format import outcome

OUTCOMES: dict[int, str] = {-1: "format_violation", 0: "wrong", 1: "correct"}
OUTCOME_NAMES: tuple[str, ...] = tuple(OUTCOMES[k] for k in sorted(OUTCOMES))  # format_violation, wrong, correct

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
    """Score completions with the paper's sparse reward.

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
    return [float(outcome(completion_text(c), lab)) for c, lab in zip(completions, label, strict=True)]


def outcome_shares(rewards: Sequence[float]) -> dict[str, float]:
    """Share of each outcome (``format_violation``, ``wrong``, ``correct``) among rewards.

    >>> outcome_shares([1.0, 0.0, -1.0, 1.0])
    {'format_violation': 0.25, 'wrong': 0.25, 'correct': 0.5}
    """
    if not rewards:
        return {name: 0.0 for name in OUTCOME_NAMES}
    return {OUTCOMES[k]: sum(1 for r in rewards if r == k) / len(rewards) for k in sorted(OUTCOMES)}


class RewardTracker:
    """:func:`persrm_reward` with a memory: the outcome shares per call and the sampled completions.

    TRL names reward functions by ``__name__``, so the tracker carries ``__name__ = "persrm_reward"``
    and its reward shows up in the trainer's log as ``rewards/persrm_reward/mean``.

    Args:
        completions_path: JSONL file to append every scored completion to (fields ``step``, ``id``,
            ``completion``, ``label``, ``reward``), or None to keep nothing on disk.
        process_index: the accelerate process rank; ranks above 0 write
            ``<stem>.rank<k>.jsonl`` beside ``completions_path`` so that processes never share a file.
        reward_fn: the reward to track (default :func:`persrm_reward`; tests substitute others).

    >>> tracker = RewardTracker()
    >>> ok = "<criteria>c</criteria><eval>e</eval><scores>[8, 3]</scores>"
    >>> tracker([ok, "junk"], label=["a", "a"], id=["p1", "p1"])
    [1.0, -1.0]
    >>> tracker.history[-1]["correct"], tracker.history[-1]["format_violation"]
    (0.5, 0.5)
    """

    def __init__(
        self,
        completions_path: str | Path | None = None,
        process_index: int = 0,
        reward_fn: Callable[..., list[float]] = persrm_reward,
    ) -> None:
        self.__name__ = "persrm_reward"
        self.reward_fn = reward_fn
        self.history: list[dict[str, float]] = []
        path = Path(completions_path) if completions_path is not None else None
        if path is not None and process_index > 0:
            path = path.with_name(f"{path.stem}.rank{process_index}{path.suffix}")
        self.completions_path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, completions: Sequence[Completion], label: Sequence[str], **kwargs: Any) -> list[float]:
        rewards = [float(r) for r in self.reward_fn(completions, label)]
        state = kwargs.get("trainer_state")
        # Completions are sampled before the optimiser step they train; number them by that step.
        step = int(state.global_step) + 1 if state is not None else len(self.history) + 1
        shares = outcome_shares(rewards)
        self.history.append({"step": step, "n": len(rewards), "reward_mean": sum(rewards) / len(rewards), **shares})
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if callable(log_metric):
            for name, share in shares.items():
                log_metric(f"outcome/{name}", share)
        if self.completions_path is not None:
            ids = kwargs.get("id") or [None] * len(rewards)
            with self.completions_path.open("a", encoding="utf-8") as handle:
                for pair_id, completion, lab, reward in zip(ids, completions, label, rewards, strict=True):
                    text = completion_text(completion)
                    record = {
                        "step": step,
                        "id": pair_id,
                        "completion": text if isinstance(text, str) else "",
                        "label": lab,
                        "reward": reward,
                    }
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return rewards

    def shares_between(self, first_step: int, last_step: int) -> dict[str, float]:
        """Outcome shares over the completions of steps ``first_step..last_step`` (weighted by count)."""
        calls = [h for h in self.history if first_step <= h["step"] <= last_step]
        total = sum(h["n"] for h in calls)
        if total == 0:
            return {}
        return {name: sum(h[name] * h["n"] for h in calls) / total for name in OUTCOME_NAMES}
