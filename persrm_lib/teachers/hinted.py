"""RM-R1's hinted second pass: rewrite, knowing the label, the traces the teacher got wrong.

RM-R1 (Chen et al. 2025, arXiv 2505.02387, reasoning distillation) has its oracle judge every
pair blind and gives the correct answer only for the pairs it judged wrong, so the distilled set
keeps the blind traces where they are right and gains reasoning for the hard pairs. Here
(issue 12, item 4; ``teacher.hinted_share``):

1. :func:`select_for_hint` picks, in pair order, the blind traces that 02's filter will not keep
   (wrong, tied or unparsed scores, or an uncited number) and that the teacher can support
   (``can_hint``), at most :func:`~persrm_lib.teachers.filtering.hint_budget` of them, so that
   hinted traces make up at most ``max_share`` of the SFT set (``h / (f + h) <= max_share`` for
   ``f`` faithful blind traces).
2. :func:`generate_hinted_traces` has the teacher write them (:meth:`Teacher.judge_hinted
   <persrm_lib.teachers.base.Teacher.judge_hinted>`) into ``data/traces_hinted.jsonl`` through
   :func:`~persrm_lib.teachers.traces.generate_traces` (resumable, atomic), each tagged
   ``hinted: true`` under the teacher name ``<teacher>+hint``.
3. 02_filter_audit filters them like any trace (format, faithfulness, citations) and adds the
   faithful ones to the SFT set (:func:`persrm_lib.teachers.filtering.merge_hinted`), which
   enforces the cap again and reports the share.

A hinted trace is a rationalisation by construction: it is tagged so every later table can tell
it apart, and its share is capped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.jsonl import read_jsonl, repair_torn_tail, write_jsonl_atomic
from .base import Pair, Teacher, TeacherResponseError
from .filtering import HINTED_FIELD, check_share, faithfulness_filter, hint_budget, is_hinted, pair_mismatch
from .traces import (
    TEACHER_FIELDS,
    GenerationReport,
    TraceGenerationError,
    generate_traces,
    partial_path,
    read_traces,
)

logger = logging.getLogger(__name__)

HINT_SUFFIX = "+hint"  # appended to the teacher's name in hinted traces


def select_for_hint(
    traces: Sequence[Mapping[str, Any]],
    max_share: float,
    strip_think: bool = False,
    can_hint: Callable[[Pair], bool] | None = None,
) -> list[dict[str, Any]]:
    """The pairs (trace fields removed) of the first :func:`hint_budget` blind traces that 02's
    filter will not keep, in trace order; deterministic, so a rerun selects the same pairs.

    Which traces are faithful is read as 02 reads it: :func:`persrm_lib.teachers.filtering.faithfulness_filter`
    with the same ``strip_think`` (a completion behind a ``<think>`` block) and its citation check
    (pairs with evidence), so the budget here is the one 02 enforces.

    Args:
        traces: the blind traces (``data/traces.jsonl``).
        max_share: ``teacher.hinted_share``, in [0, 1).
        strip_think: the profile's ``teacher.strip_think``.
        can_hint: the teacher's :meth:`~persrm_lib.teachers.base.Teacher.can_hint`; pairs it cannot
            support are skipped, so the budget goes to the others.

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
    """A teacher's hinted pass as a :class:`~persrm_lib.teachers.base.Teacher` (for
    :func:`~persrm_lib.teachers.traces.generate_traces`): ``judge`` is the inner teacher's
    ``judge_hinted``, the name is ``<teacher>+hint``.

    Args:
        teacher: the blind teacher, already prepared on the pairs the blind pass traced (so that a
            teacher that measures its scales over the set, the stylometric one, cites the same
            values in both passes); :func:`generate_hinted_traces` prepares it once, and
            ``prepare`` here does nothing.
    """

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.name = f"{teacher.name}{HINT_SUFFIX}"

    def prepare(self, pairs: Sequence[Pair]) -> None:
        """Nothing: the inner teacher was prepared on all traced pairs, not on the selected ones."""

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
    """Write the hinted traces of the pairs :func:`select_for_hint` picks to ``out_path``.

    The pass is optional, so it never blocks the pipeline: rewrites the teacher could not give
    (:class:`~persrm_lib.teachers.base.TeacherResponseError`, e.g. a prompt that the hint makes
    too long) are logged and counted in the report's ``failures``, and ``out_path`` holds the
    others. A rerun keeps the rewrites already written for pairs that are still selected (same
    pair, same teacher) -- after a changed cap or an interruption -- drops the rest, and asks the
    teacher for the missing ones only.

    Args:
        traces: the blind traces (``runfiles.traces_path(run)``, complete).
        teacher: the teacher that wrote them (it must implement ``judge_hinted``).
        out_path: ``runfiles.hinted_traces_path(run)``.
        max_share: ``teacher.hinted_share``, in [0, 1).
        fit_pairs: the pairs the blind pass traced; the teacher is prepared on them once (see
            :class:`HintedTeacher`).
        strip_think: the profile's ``teacher.strip_think`` (see :func:`select_for_hint`).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`~persrm_lib.teachers.traces.GenerationReport` (``n_pairs``: pairs selected); with
        nothing to hint (a zero budget, or no wrong trace) an empty file is written.

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
    """Read ``data/traces_hinted.jsonl`` (:func:`~persrm_lib.teachers.traces.read_traces`' checks);
    an empty file (nothing was selected) gives ``[]``.

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
