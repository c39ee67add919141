"""The ONE verdict rule: what a completion says about a pair, and which exemplars a pair is read with.

Everything that decides "is this verdict correct" -- the GRPO reward, the faithfulness filter, the
SFT trace check, GRPO validation, the judges and the evaluation metrics -- calls the functions
here, so the rule cannot drift between stages (docs/design.md, "Reward-model output"):

- a completion that does not parse (:func:`persrm_lib.core.output_format.parse_output`) is a
  format violation: outcome ``-1``;
- one that parses but does not score the labelled response strictly higher is wrong: ``0``
  (ties are wrong);
- one that scores the labelled response strictly higher is correct: ``+1``.

A trace is *faithful* exactly when its outcome is ``+1`` (PersRM-R1, arXiv 2508.14076, §3.2).

>>> from persrm_lib.core.output_format import render_output
>>> assess(render_output("c", "e", (7, 3)), "a").outcome
1
>>> assess(render_output("c", "e", (4, 4)), "a").outcome
0
>>> assess("no tags", "b").reason
'tag <criteria> is missing'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .output_format import parse_output

Side = Literal["a", "b"]
LABELS: tuple[str, str] = ("a", "b")
VIOLATION, WRONG, CORRECT = -1, 0, 1
OUTCOME_NAMES: dict[int, str] = {VIOLATION: "format_violation", WRONG: "wrong", CORRECT: "correct"}


def check_label(label: object) -> Side:
    """Return ``label`` when it is ``"a"`` or ``"b"``.

    Raises:
        ValueError: any other value, quoted in the message.
    """
    if label not in LABELS:
        raise ValueError(f"label must be 'a' or 'b', got {label!r}")
    return label  # type: ignore[return-value]


def preferred_side(scores: Sequence[float] | None) -> Side | None:
    """The response scored strictly higher, or None for a tie or missing scores.

    >>> preferred_side([7, 3]), preferred_side([2, 9]), preferred_side([5, 5]), preferred_side(None)
    ('a', 'b', None, None)
    """
    if scores is None:
        return None
    s_a, s_b = scores
    if s_a is None or s_b is None or s_a == s_b:
        return None
    return "a" if s_a > s_b else "b"


def is_correct(preferred: object, label: object) -> bool:
    """True when the preferred side is the labelled one; a tie, a violation (None) or NaN is False.

    >>> is_correct("a", "a"), is_correct(None, "a"), is_correct("b", "a")
    (True, False, False)
    """
    return preferred in LABELS and preferred == label


def a_share(sides: Sequence[object]) -> float:
    """The A-preference of parsed verdicts: the share of their preferred sides that are ``"a"`` (a tie,
    None, counts as parsed but not A); 0.5 without position bias, 1.0 for an always-A judge; NaN for none.

    >>> a_share(["a", "b", None, "a"])
    0.5
    """
    return sum(side == "a" for side in sides) / len(sides) if len(sides) else float("nan")


@dataclass(frozen=True)
class Assessment:
    """A completion read against its label (see :func:`assess`)."""

    outcome: int  # -1, 0 or +1
    scores: list[float] | None  # [s_a, s_b] when the completion parses, else None
    preferred: Side | None  # the side scored strictly higher; None for a tie or a violation
    reason: str | None  # the parser's reason when the completion does not parse, else None

    @property
    def format_ok(self) -> bool:
        return self.reason is None

    @property
    def faithful(self) -> bool:
        """A teacher trace is faithful exactly when its verdict is correct (paper §3.2)."""
        return self.outcome == CORRECT


def assess(completion: object, label: object) -> Assessment:
    """Read a completion against the labelled (chosen) side with the one parser.

    Args:
        completion: the model's or teacher's text (anything that is not ``str`` is a violation).
        label: ``"a"`` or ``"b"``.

    Returns:
        An :class:`Assessment`.

    Raises:
        ValueError: a label other than ``"a"``/``"b"``.
    """
    check_label(label)
    parsed = parse_output(completion)
    if not parsed.ok or parsed.scores is None:
        return Assessment(VIOLATION, None, None, parsed.reason)
    scores = [float(parsed.scores[0]), float(parsed.scores[1])]
    side = preferred_side(scores)
    return Assessment(CORRECT if side == label else WRONG, scores, side, None)


def outcome(completion: object, label: object) -> int:
    """The paper's sparse reward of one completion: -1 format violation, 0 wrong or tied, +1 correct."""
    return assess(completion, label).outcome


def exemplar_count(pair: Mapping[str, Any], n_exemplars: int | None = None) -> int:
    """How many exemplars a pair is read with: ``n_exemplars`` when given, else the pair's own
    ``n_exemplars`` field (what the sampler and the teacher used), else all of its exemplars.

    Raises:
        ValueError: a count below 1, or more exemplars requested than the pair has (naming the pair).
    """
    exemplars = pair["exemplars"]
    n = n_exemplars if n_exemplars is not None else pair.get("n_exemplars") or len(exemplars)
    n = int(n)
    if n < 1:
        raise ValueError(f"n_exemplars must be at least 1, got {n}")
    if n > len(exemplars):
        raise ValueError(f"pair {pair.get('id', '?')!r} has {len(exemplars)} exemplar(s), {n} requested")
    return n


def exemplars_of(pair: Mapping[str, Any], n_exemplars: int | None = None) -> list[str]:
    """The exemplars a pair is read with: the first :func:`exemplar_count` of them.

    >>> exemplars_of({"id": "x", "exemplars": ["e1", "e2", "e3"], "n_exemplars": 2})
    ['e1', 'e2']
    """
    return list(pair["exemplars"])[: exemplar_count(pair, n_exemplars)]
