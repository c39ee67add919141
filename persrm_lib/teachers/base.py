"""What every teacher is: a judge that writes a completion in the output format for a pair.

PersRM-R1 (arXiv 2508.14076, §3.2) has a large teacher LLM write a reasoning trace and scores
(r+, r-) for each contrastive pair. Every teacher here has the same interface (:class:`Teacher`:
``name``, ``judge(pair) -> completion``, ``judge_each(pairs)``, ``judge_batch(pairs)``, and, for
RM-R1's hinted second pass, ``judge_hinted(pair)`` and ``judge_each_hinted(pairs)``) and writes
the output format of :mod:`persrm_lib.core.output_format`. The teachers themselves live in
:mod:`.stylometric` (no LLM) and :mod:`.llm` (a chat client); :func:`.llm.make_teacher` builds
the one a profile names.

The errors are the chat client's (:mod:`persrm_lib.models.client`) under the teachers' names, so
an LLM teacher passes its client's errors on unchanged:

- :data:`TeacherError`: the teacher cannot go on at all (endpoint down, refused credentials):
  generation stops.
- :data:`TeacherResponseError`: one pair got no usable answer (``kind`` names why); generation
  counts it, logs it, goes on with the other pairs, and leaves the trace file unfinished so that
  a rerun retries the pair.
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
        """Called once by :func:`persrm_lib.teachers.traces.generate_traces` with ALL pairs of the
        set before judging."""

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        """Yield ``(index, completion)`` as each pair is judged (not necessarily in order).

        A pair that got no usable answer yields its :class:`TeacherResponseError` instead of a
        completion; any other :class:`TeacherError` stops the iteration.
        """
        return _each(pairs, self.judge)

    def judge_hinted(self, pair: Pair) -> str:
        """The hinted second pass (RM-R1, arXiv 2505.02387, reasoning distillation): a completion
        for ``pair`` written knowing its ``label``, for the pairs whose blind trace was wrong
        (:mod:`persrm_lib.teachers.hinted`). The scores should prefer the labelled response; the
        faithfulness filter checks it like any trace.

        Raises:
            NotImplementedError: this teacher has no hinted pass.
        """
        raise NotImplementedError(f"teacher {self.name!r} has no hinted pass (teacher.hinted_share must be 0)")

    def can_hint(self, pair: Pair) -> bool:
        """Whether :meth:`judge_hinted` can support the labelled response for ``pair`` (True unless
        the teacher knows in advance that it cannot; the hinted pass spends its budget on the others)."""
        return True

    def has_hinted_pass(self) -> bool:
        """Whether this teacher implements :meth:`judge_hinted`."""
        return type(self).judge_hinted is not Teacher.judge_hinted

    def judge_each_hinted(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        """:meth:`judge_each` for :meth:`judge_hinted`."""
        return _each(pairs, self.judge_hinted)

    def judge_batch(self, pairs: Sequence[Pair]) -> list[str]:
        """Completions for ``pairs`` in input order; raises the first error met."""
        out: list[str | None] = [None] * len(pairs)
        for i, result in self.judge_each(pairs):
            if isinstance(result, TeacherResponseError):
                raise result
            out[i] = result
        return [text for text in out if text is not None]


def _each(pairs: Sequence[Pair], judge: Callable[[Pair], str]) -> Iterator[tuple[int, str | TeacherResponseError]]:
    """``(index, judge(pair))`` per pair, or the pair's :class:`TeacherResponseError`."""
    for i, pair in enumerate(pairs):
        try:
            yield i, judge(pair)
        except TeacherResponseError as exc:
            yield i, exc
