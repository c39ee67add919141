"""What every teacher is: a judge that writes a completion in the output format
(:mod:`persrm_lib.core.output_format`) for a pair (PersRM-R1, arXiv 2508.14076, §3.2).

The errors are the chat client's (:mod:`persrm_lib.models.client`): :data:`TeacherError` stops
generation (endpoint down, refused credentials); :data:`TeacherResponseError` is one pair without a
usable answer (``kind`` names why), counted and retried on a rerun.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..models.client import ChatClientError, ChatResponseError

Pair = Mapping[str, Any]
TeacherError = ChatClientError
TeacherResponseError = ChatResponseError


class Teacher(ABC):
    """A judge that writes a completion in the output format for a pair."""

    name: str

    @abstractmethod
    def judge(self, pair: Pair) -> str:
        """The completion (criteria, evaluation, scores) for one pair."""

    def prepare(self, pairs: Sequence[Pair]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Called once by :func:`~persrm_lib.teachers.traces.generate_traces` with ALL pairs before judging."""

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        """Yield ``(index, completion or TeacherResponseError)`` as each pair is judged (any order)."""
        return each_result(pairs, self.judge)

    def trace_teacher(self, pair: Pair) -> str:
        """The name written in the ``teacher`` field of ``pair``'s trace: the teacher that wrote it (``name``
        unless this teacher hands some pairs to another, as :class:`~persrm_lib.teachers.persona.PersonaRouter`)."""
        return self.name

    def trace_teachers(self) -> frozenset[str]:
        """Every name :meth:`trace_teacher` can return: the ``teacher`` fields a resumed trace file may hold."""
        return frozenset({self.name})

    def judge_hinted(self, pair: Pair) -> str:
        """The hinted second pass (RM-R1, arXiv 2505.02387): a completion written knowing the
        pair's ``label`` (:mod:`persrm_lib.teachers.hinted`); NotImplementedError without one."""
        raise NotImplementedError(f"teacher {self.name!r} has no hinted pass (teacher.hinted_share must be 0)")

    def can_hint(self, pair: Pair) -> bool:
        """Whether :meth:`judge_hinted` can support the labelled response (True unless known otherwise)."""
        return True

    def has_hinted_pass(self) -> bool:
        """Whether this teacher implements :meth:`judge_hinted`."""
        return type(self).judge_hinted is not Teacher.judge_hinted

    def judge_each_hinted(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        """:meth:`judge_each` for :meth:`judge_hinted`."""
        return each_result(pairs, self.judge_hinted)


def each_result(items: Sequence[Any], judge: Callable[[Any], str]) -> Iterator[tuple[int, str | TeacherResponseError]]:
    """``(index, judge(item))`` per item, or ``(index, error)`` where it raises a TeacherResponseError."""
    for i, item in enumerate(items):
        try:
            yield i, judge(item)
        except TeacherResponseError as exc:
            yield i, exc
