"""Traces in both orders: the swapped copy of a trace, with its reasoning rewritten.

A training set whose chosen response sits at A more often than at B teaches position, not style
(the committed cpu run collapsed to "always A"). JudgeLM (arXiv 2310.17631) augments by swapping
the two answers *and* rewriting the judgement to match; RM-R1 (arXiv 2505.02387) alternates
positions exactly. :func:`swap_trace` does the same for this project's traces: responses A and B
exchange places, the label flips (and the evidence record's A and B values, if the pair carries
one: the pair fields go through THE swap of a pair, :func:`persrm_lib.data.pairs.swap_pair`), the
two score strings exchange places verbatim (never re-rendered: an LLM teacher's ``[7.25, 7.21]``
must not become the tie ``[7.2, 7.2]``), and every mention of "A" and "B" as a response name in ``<criteria>`` and
``<eval>`` is exchanged. Where the trace lists the two values
side by side (``A 6.5, B 1.6``, the stylometric teacher's form) the pair is put back in A-then-B
order, so the rewritten trace is exactly what the teacher writes for the swapped pair (tested on
real traces in ``tests/test_swap.py``).

A response name is a capital ``A`` or ``B`` standing alone (not inside a word, not followed by an
apostrophe or a hyphen): "A 6.5", "B.", "B is closer", "Response A". An English article "A" that
starts a sentence would be taken for a name; :func:`swap_trace` refuses a completion whose A/B
mentions it cannot account for only when asked (``strict=True``): a sentence-initial "A " followed
by a lower-case word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.output_format import parse_output, render_output
from ..core.verdict import OUTCOME_NAMES, read_verdict
from ..data.pairs import SWAPPED_SUFFIX, swap_pair

_NAME = re.compile(r"(?<![\w'’-])([AB])(?![\w'’-])")
# one side's value: text up to a comma, semicolon, parenthesis or sentence end (a dot is kept only
# inside a number), optionally followed by one parenthesised measurement such as "(d=0.34)"
_VALUE = r"(?:[^,;()\n.]|\.(?=\d))*(?: \([^()\n=]*=[^()\n]*\))?"
_SIDE_BY_SIDE = re.compile(rf"(?<![\w'’-])B ({_VALUE})(, |; )A ({_VALUE})(?=[,;)]|\.(?!\d)|$| \()", re.M)
_TALLY = re.compile(r"\bB is closer on (\d+) of (\d+) criteria, A on (\d+)")
_ARTICLE = re.compile(r"(?:^|[.!?]\s+)A [a-z]")
_SCORES_BODY = re.compile(r"<\s*scores\s*>(.*?)<\s*/\s*scores\s*>", re.IGNORECASE | re.DOTALL)


class SwapError(ValueError):
    """A trace that cannot be rewritten for the swapped order (the message names the trace and why)."""


def swap_text(text: str) -> str:
    """Exchange the response names A and B, then restore A-then-B order in side-by-side values.

    >>> swap_text("quotes: author 0, A 6.5, B 1.6; B.\\nB is closer to the author.")
    'quotes: author 0, A 1.6, B 6.5; A.\\nA is closer to the author.'
    """
    exchanged = _NAME.sub(lambda m: "B" if m.group(1) == "A" else "A", text)
    tallied = _TALLY.sub(
        lambda m: f"A is closer on {m.group(3)} of {m.group(2)} criteria, B on {m.group(1)}", exchanged
    )
    return _SIDE_BY_SIDE.sub(lambda m: f"A {m.group(3)}{m.group(2)}B {m.group(1)}", tallied)


def score_strings(completion: str) -> tuple[str, str]:
    """The two scores of a completion that parses, as written (``"7.25"``, ``"7.21"``).

    >>> score_strings("<criteria>c</criteria><eval>e</eval><scores>[ 7.25,7.21 ]</scores>")
    ('7.25', '7.21')
    """
    match = _SCORES_BODY.search(completion)
    if match is None or not parse_output(completion).ok:
        raise SwapError("the completion does not parse: it has no scores to move")
    first, second = (item.strip() for item in match.group(1).strip()[1:-1].split(","))
    return first, second


def swap_completion(completion: str, strict: bool = False) -> str:
    """The completion for the swapped order: names exchanged, the two score strings exchanged
    verbatim (so the verdict is exactly mirrored, whatever precision the teacher wrote).

    Raises:
        SwapError: the completion does not parse (nothing to rewrite), or, with ``strict``, it has
            a sentence-initial article "A" that would be taken for a response name.
    """
    parsed = parse_output(completion)
    if not parsed.ok or parsed.scores is None:
        raise SwapError(f"the completion does not parse ({parsed.reason}): nothing to rewrite")
    if strict:
        for name, body in (("criteria", parsed.criteria), ("eval", parsed.evaluation)):
            if _ARTICLE.search(body or ""):
                raise SwapError(f"<{name}> starts a sentence with the article 'A': the rewrite would be ambiguous")
    s_a, s_b = parsed.scores
    raw_a, raw_b = score_strings(completion)
    rendered = render_output(swap_text(parsed.criteria or ""), swap_text(parsed.evaluation or ""), (s_b, s_a))
    return f"{rendered[: rendered.rindex('<scores>')]}<scores>[{raw_b}, {raw_a}]</scores>"


def swap_trace(trace: Mapping[str, Any], strict: bool = False) -> dict[str, Any]:
    """The trace of the swapped pair: responses, label and evidence swapped
    (:func:`persrm_lib.data.pairs.swap_pair`, id suffixed ``:swapped``), completion rewritten,
    scores reversed; ``provenance.swapped`` records it.

    Raises:
        SwapError: the trace is already a swapped copy, its completion cannot be rewritten, or the
            rewritten copy does not hold the mirrored verdict under the one rule
            (:meth:`persrm_lib.core.verdict.Verdict.outcome`); the message names the trace id.
    """
    tid = trace.get("id", "?")
    if str(tid).endswith(SWAPPED_SUFFIX):
        raise SwapError(f"trace {tid!r} is already a swapped copy")
    try:
        completion = swap_completion(trace["completion"], strict=strict)
    except SwapError as exc:
        raise SwapError(f"trace {tid!r}: {exc}") from exc
    out = swap_pair(trace, suffix=True)
    out["completion"] = completion
    if trace.get("label") in ("a", "b"):  # the verdict must mirror exactly: correct stays correct, wrong stays wrong
        before, after = read_verdict(trace["completion"]), read_verdict(completion)
        was, now = before.outcome(trace["label"]), after.outcome(out["label"])
        if (was, before.scores) != (now, after.scores[::-1] if after.scores else None):
            raise SwapError(
                f"trace {tid!r}: the swapped copy reads {after.scores} for label {out['label']!r} "
                f"({OUTCOME_NAMES[now]}), not the mirror of {before.scores} ({OUTCOME_NAMES[was]})"
            )
    if trace.get("scores") is not None:
        s_a, s_b = trace["scores"]
        out["scores"] = [s_b, s_a]
    provenance = dict(trace.get("provenance") or {})
    provenance["swapped"] = True
    out["provenance"] = provenance
    return out


def both_orders(traces: list[Mapping[str, Any]], strict: bool = False) -> list[dict[str, Any]]:
    """Each trace followed by its swapped copy: positions exactly 50/50.

    >>> from persrm_lib.core.output_format import render_output
    >>> t = {"id": "p", "label": "a", "response_a": "x", "response_b": "y", "scores": [7, 3],
    ...      "completion": render_output("rhythm", "A 0.9, B 0.2; A.", (7, 3))}
    >>> [(r["id"], r["label"], r["scores"]) for r in both_orders([t])]
    [('p', 'a', [7, 3]), ('p:swapped', 'b', [3, 7])]
    """
    out: list[dict[str, Any]] = []
    for trace in traces:
        out.extend([dict(trace), swap_trace(trace, strict=strict)])
    return out
