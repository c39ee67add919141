"""RM-R1's hinted second pass (Chen et al. 2025, arXiv 2505.02387, reasoning distillation):
rewrite, knowing the label, the blind traces the filter drops, tagged ``hinted: true`` under the
teacher name ``<teacher>+hint``, so that they make up at most ``teacher.hinted_share`` of the SFT
set (``h / (f + h) <= max_share``; 02 merges them: :func:`persrm_lib.teachers.filtering.merge_hinted`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.jsonl import read_jsonl, repair_torn_tail, write_jsonl_atomic
from .base import Pair, Teacher, TeacherResponseError
from .filtering import HINTED_FIELD, check_share, faithfulness_filter, hint_budget, is_hinted, pair_mismatch
from .traces import TEACHER_FIELDS, GenerationReport, TraceGenerationError, generate_traces, partial_path, read_traces

logger = logging.getLogger(__name__)

HINT_SUFFIX = "+hint"  # appended to the teacher's name in hinted traces


def select_for_hint(
    traces: Sequence[Mapping[str, Any]],
    max_share: float,
    strip_think: bool = False,
    can_hint: Callable[[Pair], bool] | None = None,
) -> list[dict[str, Any]]:
    """The pairs (trace fields removed) of the first :func:`hint_budget` blind traces that
    :func:`~persrm_lib.teachers.filtering.faithfulness_filter` drops (as 02 reads them, with the
    profile's ``teacher.strip_think``), in order, skipping those the teacher's ``can_hint`` refuses.
    ``traces``: the blind traces (``data/traces.jsonl``); ``max_share``: ``teacher.hinted_share``.

    Raises:
        ValueError: ``max_share`` outside [0, 1), a trace that is itself hinted, or (as the filter)
            a malformed trace.
    """
    check_share(max_share)
    hinted = [t.get("id") for t in traces if is_hinted(t)]
    if hinted:
        raise ValueError(f"select_for_hint reads the blind traces; trace {hinted[0]!r} is a hinted one")
    if not traces:
        return []
    result = faithfulness_filter(traces, strip_think=strip_think)
    budget = hint_budget(len(result.kept), max_share)
    picked: list[dict[str, Any]] = []
    for trace, filtered in zip(traces, result.traces, strict=True):
        if len(picked) == budget:
            break
        pair = {k: v for k, v in trace.items() if k not in (*TEACHER_FIELDS, "uncited")}
        if not filtered["faithful"] and (can_hint is None or can_hint(pair)):
            picked.append(pair)
    return picked


class HintedTeacher(Teacher):
    """A teacher's hinted pass as a :class:`~persrm_lib.teachers.base.Teacher` named ``<teacher>+hint``;
    ``prepare`` does nothing (``teacher`` is prepared on the pairs the blind pass traced, so both
    passes cite the same values)."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.name = f"{teacher.name}{HINT_SUFFIX}"

    def prepare(self, pairs: Sequence[Pair]) -> None:
        pass

    def judge(self, pair: Pair) -> str:
        return self.teacher.judge_hinted(pair)

    def judge_each(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, str | TeacherResponseError]]:
        return self.teacher.judge_each_hinted(pairs)


def generate_hinted_traces(
    traces: Sequence[Mapping[str, Any]],
    teacher: Teacher,
    out_path: str | Path,
    max_share: float,
    fit_pairs: Sequence[Pair],
    strip_think: bool = False,
    progress: bool = False,
) -> GenerationReport:
    """Write the hinted traces of the pairs :func:`select_for_hint` picks to ``out_path``
    (``runfiles.hinted_traces_path(run)``; an empty file when none), with ``teacher`` prepared
    once on ``fit_pairs`` (the pairs the blind pass traced).

    The pass never blocks the pipeline: rewrites the teacher could not give are counted in the
    report's ``failures``. A rerun keeps the rewrites of pairs still selected.

    Raises:
        NotImplementedError: the teacher has no hinted pass (checked before any file is touched).
        ValueError: ``max_share`` outside [0, 1), or hinted traces among ``traces``.
        TeacherError: the teacher cannot go on at all (e.g. the endpoint is down).
    """
    if not teacher.has_hinted_pass():
        raise NotImplementedError(f"teacher {teacher.name!r} has no hinted pass (teacher.hinted_share must be 0)")
    out_path = Path(out_path)
    partial = partial_path(out_path)
    teacher.prepare(list(fit_pairs))  # once, for can_hint and for the rewrites
    hinted_teacher = HintedTeacher(teacher)
    selected = select_for_hint(traces, max_share, strip_think, teacher.can_hint)
    wanted = {p["id"]: p for p in selected}
    earlier = read_hinted_traces(out_path) if out_path.is_file() else []
    if partial.is_file():
        repair_torn_tail(partial)
        earlier += read_jsonl(partial)
    kept: dict[Any, dict[str, Any]] = {}
    for record in earlier:
        pair = wanted.get(record.get("id"))
        if pair is not None and record.get("teacher") == hinted_teacher.name and pair_mismatch(record, pair) is None:
            kept.setdefault(record["id"], record)
    stale = len({r.get("id") for r in earlier}) - len(kept)
    if stale:
        logger.info("%s: dropping %d hinted trace(s) no longer selected", out_path, stale)
    out_path.unlink(missing_ok=True)  # the final name only ever holds a finished pass
    if kept:
        write_jsonl_atomic(list(kept.values()), partial)  # generate_traces resumes from these
    else:
        partial.unlink(missing_ok=True)
    if not selected:  # nothing kept either: the partial file is gone
        write_jsonl_atomic([], out_path)
        return GenerationReport(out_path, 0, 0, 0, 0)
    try:
        return generate_traces(selected, hinted_teacher, out_path, progress=progress, tags={HINTED_FIELD: True})
    except TraceGenerationError as exc:
        logger.warning("hinted pass: %s; keeping the %d rewrites written", exc, exc.n_written)
        done = {r["id"]: r for r in read_jsonl(partial)} if partial.is_file() else {}
        written = [done[p["id"]] for p in selected if p["id"] in done]
        write_jsonl_atomic(written, out_path)
        partial.unlink(missing_ok=True)
        n_faithful = sum(bool(r.get("faithful")) for r in written)
        return GenerationReport(out_path, len(selected), len(kept), len(written) - len(kept), n_faithful, exc.failures)


def read_hinted_traces(path: str | Path) -> list[dict[str, Any]]:
    """Read ``data/traces_hinted.jsonl`` (:func:`~persrm_lib.teachers.traces.read_traces`); an empty file gives ``[]``.

    Raises:
        FileNotFoundError: the file is missing (01_synthesize did not run the hinted pass).
        ValueError: as :func:`~persrm_lib.teachers.traces.read_traces`, or a trace not tagged hinted.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        return []
    traces = read_traces(path, written_by="01_synthesize with teacher.hinted_share > 0")
    untagged = [t.get("id") for t in traces if not is_hinted(t)]
    if untagged:
        raise ValueError(f"{path}: trace {untagged[0]!r} is not tagged {HINTED_FIELD}: true")
    return traces
