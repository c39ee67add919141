"""The pointwise formulation: the reward model reads the exemplars, the query and ONE response.

Why. A small model judging a pair in the paper's pairwise format has to find the answer in the
order of A and B, and at its decision position the state for a pair and for the swapped pair is
nearly identical (cosine 0.999+ for SmolLM2-135M, measured: README, "The persona benchmark"):
every such run collapsed to "always A". Scoring each response alone, as DeepSeek-GRM
(arXiv 2504.02495) and J1's pointwise judge (arXiv 2505.10320) do, leaves no position to prefer:
a pair is judged by scoring both responses and comparing, so it is order-consistent by construction.

The completion (``prompt.mode = "pointwise"``, :func:`persrm_lib.core.prompt.build_pointwise_messages`)::

    <criteria>the features the exemplars show</criteria>
    <eval>which of them the response shows, misses or adds</eval>
    <score>s</score>

read by :func:`persrm_lib.core.output_format.parse_output` with ``mode="pointwise"``.

The GRPO reward keeps the paper's meaning (-1 / 0 / +1, §3.3) with the *side* of a response defined
by the midpoint of the scale: a score above :data:`MIDPOINT` says "written by the author", below it
"not by the author". A sample for the chosen response earns +1 when its score is above the midpoint,
a sample for the rejected response when its score is below; a score exactly at the midpoint takes
no side and earns 0 (as a tie does in the pairwise reward); a format violation earns -1. The side is
read from one sample alone, so the reward needs no other sample, and a policy that scores every
response high (or low) is right on exactly half the rows of each pair: GRPO's joint group over both
responses of a pair (:mod:`persrm_lib.train.order_robust`) then has the spread to move it. The
rule is the pairwise one (:meth:`persrm_lib.core.verdict.Verdict.outcome`): the response is scored
against the midpoint as if the midpoint were the other response.

>>> pointwise_outcome("<criteria>c</criteria><eval>e</eval><score>9</score>", chosen=True)
1
>>> pointwise_outcome("<criteria>c</criteria><eval>e</eval><score>9</score>", chosen=False)
0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .output_format import parse_output
from .verdict import Verdict

__all__ = [
    "MIDPOINT",
    "SIDES",
    "join_completions",
    "pair_verdict",
    "pointwise_outcome",
    "pointwise_prompt_texts",
    "pointwise_reward",
    "side_rows",
    "split_completions",
]

MIDPOINT = 5.0  # a score above it places the response on the author's side
SIDES = ("a", "b")


def pointwise_prompt_texts(tokenizer: Any, pair: Mapping[str, Any], n_exemplars: int | None = None) -> list[str]:
    """The chat-templated pointwise prompts of a pair: ``[prompt for A, prompt for B]``."""
    from .prompt import build_pointwise_messages

    return [
        tokenizer.apply_chat_template(
            build_pointwise_messages(pair, side, n_exemplars, tokenizer=tokenizer),
            tokenize=False,
            add_generation_prompt=True,
        )
        for side in SIDES
    ]


def pair_verdict(completion_a: object, completion_b: object) -> Verdict:
    """A pair's verdict from its two pointwise completions, parsed alone: the two scores compared. A
    format violation in either is a violation, its ``reason`` naming the response; ``completion``
    holds both (:func:`join_completions`) when both are text.

    >>> ok = "<criteria>c</criteria><eval>e</eval><score>{}</score>"
    >>> pair_verdict(ok.format(8), ok.format(3)).preferred, pair_verdict(ok.format(8), "3").reason
    ('a', 'response B: tag <criteria> is missing')
    """
    a, b = completion_a, completion_b
    parsed = [parse_output(a, mode="pointwise"), parse_output(b, mode="pointwise")]
    reason = next((f"response {s.upper()}: {p.reason}" for s, p in zip(SIDES, parsed, strict=True) if not p.ok), None)
    text = join_completions(a, b) if isinstance(a, str) and isinstance(b, str) else None
    if reason is not None:
        return Verdict(None, None, text, reason)
    return Verdict(parsed[0].score, parsed[1].score, text)


def pointwise_outcome(completion: object, chosen: bool) -> int:
    """The sparse reward of one pointwise sample: -1 format violation; +1 when the score is on the
    right side of :data:`MIDPOINT` (above for the chosen response, below for the rejected); else 0
    (at the midpoint: a tie). The one rule decides (:meth:`persrm_lib.core.verdict.Verdict.outcome`):
    the response is side A, the midpoint side B, and the label is A exactly when the response is the
    chosen one."""
    parsed = parse_output(completion, mode="pointwise")
    against_midpoint = Verdict(parsed.score, MIDPOINT, reason=parsed.reason)
    return against_midpoint.outcome("a" if chosen else "b")


def pointwise_reward(
    completions: Sequence[Any], label: Sequence[str], side: Sequence[str], **kwargs: Any
) -> list[float]:
    """TRL reward for pointwise rows (:func:`pointwise_outcome` per completion); the row's response
    is the chosen one when its ``side`` is the pair's ``label``.

    Args:
        completions: plain or conversational completions (the last assistant message is read).
        label: the pair's labelled response, ``"a"`` or ``"b"`` (a dataset column).
        side: which response the row shows, ``"a"`` or ``"b"`` (a dataset column, :func:`side_rows`).
        **kwargs: other dataset columns and trainer extras, ignored.

    Returns:
        One float per completion: -1.0, 0.0 or 1.0.

    Raises:
        ValueError: the columns differ in length from ``completions``, or a label or side is not a/b.

    >>> ok = "<criteria>c</criteria><eval>e</eval><score>2</score>"
    >>> pointwise_reward([ok, ok, "2"], label=["a", "a", "a"], side=["a", "b", "b"])
    [0.0, 1.0, -1.0]
    """
    from .reward import completion_text

    if not len(completions) == len(label) == len(side):
        raise ValueError(
            f"pointwise_reward got {len(completions)} completions, {len(label)} labels and {len(side)} sides"
        )
    for name, values in (("label", label), ("side", side)):
        bad = [v for v in values if v not in SIDES]
        if bad:
            raise ValueError(f"pointwise_reward: {name} must be 'a' or 'b', got {bad[0]!r}")
    return [
        float(pointwise_outcome(completion_text(c), lab == s))
        for c, lab, s in zip(completions, label, side, strict=True)
    ]


def side_rows(pairs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``[p0 side a, p0 side b, p1 side a, ...]``: each pair once per response, with ``side``
    and ``chosen`` (the layout the joint-group GRPO sampler expects, as both orders are for the
    pairwise format).

    >>> [(r["side"], r["chosen"]) for r in side_rows([{"id": "p", "label": "b"}])]
    [('a', False), ('b', True)]
    """
    rows = []
    for pair in pairs:
        for side in SIDES:
            rows.append({**pair, "side": side, "chosen": pair["label"] == side})
    return rows


_MARK_A, _MARK_B = "[response A]\n", "\n[response B]\n"


def join_completions(completion_a: str, completion_b: str) -> str:
    """One record of a pair's two pointwise completions (what the evaluation stores as the pair's
    ``completion``); :func:`split_completions` reads it back.

    >>> split_completions(join_completions("x", "y"))
    ('x', 'y')
    """
    return f"{_MARK_A}{completion_a}{_MARK_B}{completion_b}"


def split_completions(text: str) -> tuple[str, str] | None:
    """The two completions of :func:`join_completions`, or None when ``text`` is not such a record."""
    if not isinstance(text, str) or not text.startswith(_MARK_A) or _MARK_B not in text:
        return None
    a, b = text[len(_MARK_A) :].split(_MARK_B, 1)
    return a, b
