"""The persona teacher: a blind, exact teacher for the persona benchmark.

It reads a pair the way the reward model should: it runs the style detectors of
:mod:`persrm_lib.data.personas` on the exemplars and on each response (never the pair's recorded
personas, never the label), names in ``<criteria>`` the operators every exemplar shows, checks
each response against them in ``<eval>`` (what it shows, which criteria it misses, which features
it adds), and scores by the number of mismatches. On persona pairs it is right by construction
(the chosen response shows exactly the exemplars' operators; the rejected one differs in at least
one), so its traces are the strong teacher that the stylometric one is not, and its checks are the
ground truth the trained model's reasoning is scored against (notebooks 05 and 07).

Two trace shapes, one per formulation (``prompt.mode``):

- pairwise (the paper's format)::

    <criteria>lowercase, ampersand</criteria>
    <eval>A shows: lowercase, ampersand. missing: none. extra: none.
    B shows: lowercase. missing: ampersand. extra: none.</eval>
    <scores>[10, 4]</scores>

- pointwise (one response)::

    <criteria>lowercase, ampersand</criteria>
    <eval>shows: lowercase. missing: ampersand. extra: none.</eval>
    <score>4</score>

Score: ``10 - 6 x (missing + extra)``, at least 0 (:func:`match_score`): 10 for the persona itself,
4 one feature off, 0 beyond; so every score of a response in the persona is above the midpoint 5
and every other below it, which the pointwise GRPO reward reads (:mod:`persrm_lib.core.pointwise`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.output_format import format_score, render_output
from ..core.verdict import exemplars_of
from ..data.personas import CATALOGUE, is_persona_pair, shows
from .base import Teacher, TeacherResponseError

__all__ = [
    "PENALTY",
    "PersonaCheck",
    "PersonaRouter",
    "PersonaTeacher",
    "check_response",
    "exemplar_criteria",
    "match_score",
    "pointwise_completions",
    "pointwise_trace",
    "pairwise_trace",
    "read_checks",
    "read_criteria",
]

PENALTY = 6.0  # score points lost per mismatched operator: 10 for the persona, 4 one feature off, 0 beyond
_ORDER = {op.name: i for i, op in enumerate(CATALOGUE)}


def _names(ops: Iterable[str]) -> str:
    ops = sorted(ops, key=_ORDER.__getitem__)
    return ", ".join(ops) if ops else "none"


def exemplar_criteria(exemplars: Sequence[str]) -> frozenset[str]:
    """The operators every exemplar shows (the persona a reader can infer from them)."""
    if not exemplars:
        raise ValueError("no exemplars: the criteria are read from the exemplars")
    found = shows(exemplars[0])
    for text in exemplars[1:]:
        found &= shows(text)
    return found


@dataclass(frozen=True)
class PersonaCheck:
    """One response checked against the criteria.

    Attributes:
        shows: the operators the response shows.
        missing: criteria the response does not show.
        extra: operators the response shows that are not criteria.
    """

    shows: frozenset[str]
    missing: frozenset[str]
    extra: frozenset[str]

    @property
    def mismatches(self) -> int:
        return len(self.missing) + len(self.extra)

    def line(self) -> str:
        """``shows: … missing: … extra: …`` as the traces write it."""
        return f"shows: {_names(self.shows)}. missing: {_names(self.missing)}. extra: {_names(self.extra)}."


def check_response(criteria: frozenset[str], response: str) -> PersonaCheck:
    """Check one response against ``criteria`` with the detectors."""
    found = shows(response)
    return PersonaCheck(found, criteria - found, found - criteria)


def match_score(check: PersonaCheck) -> float:
    """``10 - PENALTY x mismatches``, at least 0: 10 for the persona itself, 4 one feature off, 0 beyond."""
    return max(0.0, 10.0 - PENALTY * check.mismatches)


def pointwise_trace(exemplars: Sequence[str], response: str) -> str:
    """The pointwise completion for one response (``<criteria>``, ``<eval>``, ``<score>``)."""
    criteria = exemplar_criteria(exemplars)
    check = check_response(criteria, response)
    return f"<criteria>{_names(criteria)}</criteria>\n<eval>{check.line()}</eval>\n<score>{format_score(match_score(check))}</score>"


def pairwise_trace(pair: Mapping[str, Any], n_exemplars: int | None = None) -> str:
    """The pairwise completion for a pair (the paper's format, A then B)."""
    criteria = exemplar_criteria(exemplars_of(pair, n_exemplars))
    checks = [check_response(criteria, pair[f"response_{side}"]) for side in "ab"]
    evaluation = "\n".join(f"{side.upper()} {check.line()}" for side, check in zip("ab", checks, strict=True))
    return render_output(_names(criteria), evaluation, (match_score(checks[0]), match_score(checks[1])))


_LIST_RE = r"([a-z_, ]+?)"
_CHECK_RE = re.compile(rf"(?:\b([AB]) )?shows: {_LIST_RE}\. missing: {_LIST_RE}\. extra: {_LIST_RE}\.")


def _read_list(text: str) -> frozenset[str] | None:
    items = [x.strip() for x in text.split(",")]
    if items == ["none"]:
        return frozenset()
    if not items or any(x not in _ORDER for x in items):
        return None
    return frozenset(items)


def read_criteria(criteria: str | None) -> frozenset[str] | None:
    """The operators a ``<criteria>`` section names (None when it is not a list of operator names)."""
    if criteria is None:
        return None
    return _read_list(criteria.strip())


def read_checks(evaluation: str | None) -> list[PersonaCheck | None]:
    """The checks an ``<eval>`` section writes, in order (None for a check that does not parse)."""
    if evaluation is None:
        return []
    out: list[PersonaCheck | None] = []
    for match in _CHECK_RE.finditer(evaluation):
        lists = [_read_list(match.group(i)) for i in (2, 3, 4)]
        out.append(None if any(x is None for x in lists) else PersonaCheck(*lists))  # type: ignore[arg-type]
    return out


def pointwise_completions(pair: Mapping[str, Any], n_exemplars: int | None = None) -> tuple[str, str]:
    """The pointwise SFT completions of a persona pair: ``(for A, for B)``.

    Raises:
        ValueError: the pair is not a persona pair (the other teachers write pairwise traces only),
            naming it.
    """
    if not is_persona_pair(pair):
        raise ValueError(
            f"pair {pair.get('id', '?')!r} is not a persona pair: prompt.mode='pointwise' trains on the persona "
            "teacher's traces only (list only 'personas' among the training benchmarks, data.train_benchmarks)"
        )
    exemplars = exemplars_of(pair, n_exemplars)
    return pointwise_trace(exemplars, pair["response_a"]), pointwise_trace(exemplars, pair["response_b"])


class PersonaTeacher(Teacher):
    """The blind persona teacher (pairwise traces; :func:`pointwise_trace` for the other mode)."""

    name = "persona"

    def __init__(self, n_exemplars: int | None = None) -> None:
        self.n_exemplars = n_exemplars

    def judge(self, pair: Mapping[str, Any]) -> str:
        return pairwise_trace(pair, self.n_exemplars)


class PersonaRouter(Teacher):
    """The profile's teacher for ordinary pairs and the persona teacher for persona pairs
    (:func:`persrm_lib.data.personas.is_persona_pair`): a run that lists the ``personas``
    benchmark traces its persona pairs exactly, whatever ``teacher.kind`` says.

    ``name`` stays the wrapped teacher's (its hinted pass is ``<name>+hint``), but each trace names the teacher
    that wrote it (:meth:`trace_teacher`: ``persona`` on persona pairs), so 02's tables per teacher say who
    traced what. The persona teacher never needs a hinted pass (it is right on every persona pair).
    """

    def __init__(self, teacher: Teacher, n_exemplars: int | None = None) -> None:
        self.teacher = teacher
        self.persona = PersonaTeacher(n_exemplars)
        self.name = teacher.name

    def judge(self, pair: Mapping[str, Any]) -> str:
        return self.persona.judge(pair) if is_persona_pair(pair) else self.teacher.judge(pair)

    def trace_teacher(self, pair: Mapping[str, Any]) -> str:
        return self.persona.name if is_persona_pair(pair) else self.teacher.trace_teacher(pair)

    def trace_teachers(self) -> frozenset[str]:
        return self.teacher.trace_teachers() | {self.persona.name}

    def prepare(self, pairs: Sequence[Mapping[str, Any]]) -> None:
        self.teacher.prepare([p for p in pairs if not is_persona_pair(p)])

    def judge_each(self, pairs: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        others = [i for i, p in enumerate(pairs) if not is_persona_pair(p)]
        for i, pair in enumerate(pairs):
            if is_persona_pair(pair):
                yield i, self.persona.judge(pair)
        for j, result in self.teacher.judge_each([pairs[i] for i in others]):
            yield others[j], result

    def judge_hinted(self, pair: Mapping[str, Any]) -> str:
        return self.persona.judge(pair) if is_persona_pair(pair) else self.teacher.judge_hinted(pair)

    def can_hint(self, pair: Mapping[str, Any]) -> bool:
        return not is_persona_pair(pair) and self.teacher.can_hint(pair)

    def has_hinted_pass(self) -> bool:
        return self.teacher.has_hinted_pass()
