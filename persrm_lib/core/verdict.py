"""The ONE verdict: what a completion or a judge says about a pair, the ONE rule that reads it
against a label, and which exemplars a pair is read with.

Everything that decides "is this verdict correct" -- the GRPO reward (pairwise and pointwise), the
faithfulness filter, the SFT trace check, GRPO validation, the judges and the evaluation metrics --
holds a :class:`Verdict` and asks it, so the rule cannot drift between stages (docs/design.md,
"Reward-model output"). :func:`preferred_side` is the one place that turns scores into a side, and
:meth:`Verdict.outcome` the one place that turns a verdict and a label into an outcome:

- a completion that does not parse (:func:`persrm_lib.core.output_format.parse_output`), or a
  verdict without scores, is a format violation: outcome ``-1``;
- one that parses but does not score the labelled response strictly higher is wrong: ``0``
  (ties are wrong);
- one that scores the labelled response strictly higher is correct: ``+1``.

A trace is *faithful* exactly when its outcome is ``+1`` (PersRM-R1, arXiv 2508.14076, §3.2).

>>> from persrm_lib.core.output_format import render_output
>>> read_verdict(render_output("c", "e", (7, 3))).outcome("a")
1
>>> read_verdict(render_output("c", "e", (4, 4))).outcome("a")
0
>>> read_verdict("no tags").reason
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


def preferred_side(scores: Sequence[float | None] | None) -> Side | None:
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
class Verdict:
    """THE verdict on one pair, whoever gave it: the reward model or a teacher (:func:`read_verdict`),
    a generative judge, or a judge that scores without generating (character n-grams, log-likelihood,
    authorship, a scalar reward model: ``completion`` is None).

    ``s_a``/``s_b`` (higher = preferred) are None when there are no scores: a completion that breaks
    the output format (``reason`` says why), or a pair whose prompt did not fit the judge's context and
    was counted instead of refused (``too_long``: nothing was generated; the pair stays out of the rates).

    >>> Verdict(7.0, 3.0).preferred, Verdict(7.0, 3.0).outcome("b"), Verdict(None, None).outcome("a")
    ('a', 0, -1)
    """

    s_a: float | None
    s_b: float | None
    completion: str | None = None
    reason: str | None = None  # the parser's reason when the completion does not parse
    too_long: bool = False

    @property
    def scores(self) -> list[float] | None:
        """``[s_a, s_b]``, or None when either is missing."""
        return None if self.s_a is None or self.s_b is None else [self.s_a, self.s_b]

    @property
    def format_ok(self) -> bool:
        return self.scores is not None

    @property
    def preferred(self) -> Side | None:
        """The response scored strictly higher (:func:`preferred_side`); None for a tie or a violation."""
        return preferred_side(self.scores)

    def outcome(self, label: object) -> int:
        """The paper's sparse reward against the labelled (chosen) side: -1 format violation, 0 wrong
        or tied, +1 correct (faithful, for a teacher trace).

        Raises:
            ValueError: a label other than ``"a"``/``"b"``.
        """
        check_label(label)
        if not self.format_ok:
            return VIOLATION
        return CORRECT if is_correct(self.preferred, label) else WRONG


def read_verdict(completion: object) -> Verdict:
    """Read a pairwise completion with the one parser; never raises.

    Args:
        completion: the model's or teacher's text (anything that is not ``str`` is a violation).

    Returns:
        A :class:`Verdict` holding the completion (None when it is not text), its scores, or the
        parser's ``reason`` when it does not parse.
    """
    parsed = parse_output(completion)
    s_a, s_b = parsed.scores or (None, None)
    return Verdict(s_a, s_b, completion if isinstance(completion, str) else None, parsed.reason)


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
