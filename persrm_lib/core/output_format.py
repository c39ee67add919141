"""The reward model's output format and its ONE parser.

Every part of the project that reads a verdict -- the GRPO reward, the faithfulness filter,
the evaluation -- calls :func:`parse_output`. The format (docs/design.md, "Reward-model output"; paper §3.1)::

    <criteria>...</criteria>
    <eval>...</eval>
    <scores>[s_a, s_b]</scores>

``s_a`` and ``s_b`` are numbers in [0, 10], in response order (A first). Only whitespace may
stand before ``<criteria>``, between the sections, and after ``</scores>``. ``<criteria>`` and
``<eval>`` must hold text: an empty or whitespace-only section is a violation, so the GRPO reward
never pays for skipping the analysis. Emptiness is judged after Unicode normalisation
(:func:`persrm_lib.core.text.is_blank`): a section of zero-width spaces is empty too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from .text import is_blank

SCORE_MIN = 0.0
SCORE_MAX = 10.0
SECTIONS = ("criteria", "eval", "scores")
POINTWISE_SECTIONS = ("criteria", "eval", "score")
MODES = ("pairwise", "pointwise")
Mode = Literal["pairwise", "pointwise"]

_TAG_RE = re.compile(r"</?\s*(criteria|eval|scores|score)\s*>", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")  # ASCII digits only
# the opening tag as _TAG_RE reads it, whole or begun (a prefix of one): what a parsable completion starts with
_OPENING_RE = re.compile(r"<\s*criteria\s*>", re.IGNORECASE)
_BEGUN_OPENING_RE = re.compile(r"<\s*(?:c(?:r(?:i(?:t(?:e(?:r(?:i(?:a\s*)?)?)?)?)?)?)?)?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedOutput:
    """What :func:`parse_output` read. ``ok`` is False exactly when ``reason`` is set. Which side it
    prefers, and whether that is right, is the verdict's business (:func:`persrm_lib.core.verdict.read_verdict`)."""

    ok: bool
    criteria: str | None = None
    evaluation: str | None = None
    scores: tuple[float, float] | None = None
    reason: str | None = None
    score: float | None = None


def can_still_parse(text: str) -> bool:
    """Whether some continuation of ``text``, a completion still being written, could parse (either
    mode). :func:`parse_output` accepts only whitespace before ``<criteria>``, so a completion that
    starts with anything else is a violation however it goes on: generation can stop there with the
    same verdict (:func:`persrm_lib.models.generation.generate`'s ``stop_when``). Only the opening is
    checked, so True does not promise a parse. Trailing U+FFFD characters are ignored: they are
    what a multi-byte character decodes to while only some of its tokens are written.

    >>> can_still_parse("  <crit"), can_still_parse("<Criteria>anything"), can_still_parse("The answer")
    (True, True, False)
    """
    head = text.rstrip("\ufffd").lstrip()
    return not head or bool(_OPENING_RE.match(head) or _BEGUN_OPENING_RE.fullmatch(head))


def _violation(reason: str) -> ParsedOutput:
    return ParsedOutput(ok=False, reason=reason)


def _parse_scores(body: str) -> tuple[tuple[float, float] | None, str | None]:
    text = body.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None, f"scores must be written as [s_a, s_b], got {text[:40]!r}"
    items = [item.strip() for item in text[1:-1].split(",")]
    if len(items) != 2:
        return None, f"expected exactly two scores, got {len(items) if items != [''] else 0}"
    values: list[float] = []
    for item in items:
        value, reason = _parse_one_score(item)
        if value is None:
            return None, reason
        values.append(value)
    return (values[0], values[1]), None


def _section_bodies(text: str, sections: tuple[str, ...]) -> tuple[list[str] | None, str | None]:
    """The bodies of ``sections`` (each exactly once, in order, only whitespace around), or a reason."""
    tags = [(m.group(0).startswith("</"), m.group(1).lower(), m.start(), m.end()) for m in _TAG_RE.finditer(text)]
    tags = [t for t in tags if t[1] in sections or t[1] in SECTIONS or t[1] in POINTWISE_SECTIONS]
    for name in sections:
        opens = sum(1 for closing, tag, _, _ in tags if tag == name and not closing)
        closes = sum(1 for closing, tag, _, _ in tags if tag == name and closing)
        if opens == 0:
            return None, f"tag <{name}> is missing"
        if closes == 0:
            return None, f"tag </{name}> is missing"
        if opens > 1 or closes > 1:
            return None, f"tag <{name}> is repeated"
    expected = [(closing, name) for name in sections for closing in (False, True)]
    if [(closing, tag) for closing, tag, _, _ in tags] != expected:
        order = " ".join(("</" if c else "<") + t + ">" for c, t, _, _ in tags)
        return None, f"tags out of order: {order}"
    bodies: list[str] = []
    cursor = 0
    for i in range(0, 2 * len(sections), 2):
        _, name, open_start, open_end = tags[i]
        _, _, close_start, close_end = tags[i + 1]
        if text[cursor:open_start].strip():
            where = f"before <{sections[0]}>" if i == 0 else f"between sections, before <{name}>"
            return None, f"text {where}"
        bodies.append(text[open_end:close_start])
        cursor = close_end
    if text[cursor:].strip():
        return None, f"text after </{sections[-1]}>"
    for name, body in zip(sections[:2], bodies[:2], strict=True):
        if is_blank(body):  # reasoning is not optional, and invisible text is none: GRPO must not pay for it
            return None, f"section <{name}> is empty"
    return bodies, None


def _parse_one_score(body: str) -> tuple[float | None, str | None]:
    item = body.strip()
    if not _NUMBER_RE.match(item):
        return None, f"score {item[:20]!r} is not a number"
    value = float(item)
    if not math.isfinite(value) or not SCORE_MIN <= value <= SCORE_MAX:
        return None, f"score {item[:20]} is outside [{SCORE_MIN:g}, {SCORE_MAX:g}]"
    return value, None


def parse_output(text: object, mode: Mode = "pairwise") -> ParsedOutput:
    """Parse a reward-model completion strictly; never raises.

    Args:
        text: the completion (anything that is not a ``str`` is a violation).
        mode: ``"pairwise"`` (the paper's format, ``<scores>[s_a, s_b]</scores>``) or
            ``"pointwise"`` (one response judged alone, ``<score>s</score>``; see
            :mod:`persrm_lib.core.pointwise`).

    Returns:
        A :class:`ParsedOutput`; on a violation ``ok`` is False and ``reason`` says why. In
        pointwise mode ``score`` holds the one score and ``scores`` is None.

    >>> parse_output("<criteria>c</criteria><eval>e</eval><scores>[7, 3]</scores>").scores
    (7.0, 3.0)
    >>> parse_output("<scores>[7, 3]</scores>").reason
    'tag <criteria> is missing'
    >>> parse_output("<criteria>c</criteria><eval>e</eval><score>7</score>", mode="pointwise").score
    7.0
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(text, str):
        return _violation(f"completion is a {type(text).__name__}, not text")
    sections = SECTIONS if mode == "pairwise" else POINTWISE_SECTIONS
    bodies, reason = _section_bodies(text, sections)
    if bodies is None:
        return _violation(reason or "unreadable")
    if mode == "pointwise":
        score, reason = _parse_one_score(bodies[2])
        if reason is not None:
            return _violation(reason)
        return ParsedOutput(ok=True, criteria=bodies[0].strip(), evaluation=bodies[1].strip(), score=score)
    scores, reason = _parse_scores(bodies[2])
    if reason is not None:
        return _violation(reason)
    return ParsedOutput(ok=True, criteria=bodies[0].strip(), evaluation=bodies[1].strip(), scores=scores)


_THINK_RE = re.compile(r"\A\s*<think>.*?</think>", re.DOTALL)


def strip_think(text: object) -> tuple[object, bool]:
    """Remove ONE leading ``<think>…</think>`` block, as reasoning models (DeepSeek-R1, Qwen3,
    QwQ) write before their answer; say whether one was removed.

    Only for teachers and judges served by such models, and only when their settings ask for it
    (``teacher.strip_think``, ``evaluation.strip_think``, both off by default): the trained reward
    model's format stays strict, and the GRPO reward never strips. Only whitespace may stand before
    ``<think>``; the block ends at the first ``</think>``; a second block, an unclosed one or text
    before it is left in place, so :func:`parse_output` still reports it.

    Args:
        text: a completion (anything that is not a ``str`` is returned as it is).

    Returns:
        ``(rest, True)`` with the text after ``</think>`` when a block was removed, else
        ``(text, False)``.

    >>> strip_think("<think>A reads like the exemplar.</think>\\n<criteria>c</criteria>")
    ('\\n<criteria>c</criteria>', True)
    >>> strip_think("<criteria>c</criteria>")
    ('<criteria>c</criteria>', False)
    """
    if not isinstance(text, str):
        return text, False
    match = _THINK_RE.match(text)
    if match is None:
        return text, False
    return text[match.end() :], True


def format_score(value: float) -> str:
    """Write a score the way the format expects: an integer without decimals, else one decimal."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def render_output(criteria: str, evaluation: str, scores: tuple[float, float]) -> str:
    """Write a completion in the output format; ``parse_output`` reads it back.

    >>> render_output("rhythm", "A matches", (8, 2.5))
    '<criteria>\\nrhythm\\n</criteria>\\n<eval>\\nA matches\\n</eval>\\n<scores>[8, 2.5]</scores>'
    """
    for name, body in (("criteria", criteria), ("eval", evaluation)):
        if is_blank(body):
            raise ValueError(f"section <{name}> is empty: the format needs the analysis")
    s_a, s_b = scores
    for value in (s_a, s_b):
        if not SCORE_MIN <= value <= SCORE_MAX:
            raise ValueError(f"score {value} is outside [{SCORE_MIN:g}, {SCORE_MAX:g}]")
    return (
        f"<criteria>\n{criteria.strip()}\n</criteria>\n"
        f"<eval>\n{evaluation.strip()}\n</eval>\n"
        f"<scores>[{format_score(s_a)}, {format_score(s_b)}]</scores>"
    )
