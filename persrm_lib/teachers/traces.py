"""Teacher traces (docs/design.md, "Trace"; PersRM-R1, arXiv 2508.14076, §3.2): a pair plus
``teacher, completion, scores, faithful`` (:data:`TRACE_FIELDS`), and the writer
(:func:`generate_traces`) and reader (:func:`read_traces`) of trace files.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.jsonl import JsonlAppender, iter_jsonl, read_jsonl, repair_torn_tail, write_jsonl_atomic
from ..core.verdict import CORRECT, read_verdict
from ..data.pairs import PAIR_FIELDS, IdIndex, validate_pair
from .base import Pair, Teacher, TeacherResponseError

logger = logging.getLogger(__name__)

TEACHER_FIELDS: tuple[str, ...] = ("teacher", "completion", "scores", "faithful")  # what a teacher adds to a pair
TRACE_FIELDS: tuple[str, ...] = (*PAIR_FIELDS, *TEACHER_FIELDS)  # a full trace record, in file order
TEACHER_PAIR_FIELDS = ("id", "query", "exemplars", "response_a", "response_b", "label")  # what a teacher needs


def make_trace(pair: Pair, teacher: str, completion: str, tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A trace record: the pair's fields (in its order), ``teacher, completion, scores, faithful``,
    then ``tags`` (e.g. ``{"hinted": True}``). ``scores`` (``[s_a, s_b]`` or None) and ``faithful``
    (the labelled response scored strictly higher) come from :func:`persrm_lib.core.verdict.read_verdict`.
    ValueError when a tag would overwrite a field.
    """
    clash = sorted(set(tags or {}) & {*TRACE_FIELDS, *pair})
    if clash:
        raise ValueError(
            f"make_trace: tag(s) {', '.join(clash)} would overwrite a field of trace {pair.get('id', '?')!r}"
        )
    verdict = read_verdict(completion)
    faithful = verdict.outcome(pair["label"]) == CORRECT
    trace = {k: v for k, v in pair.items() if k not in TEACHER_FIELDS}
    trace.update(teacher=teacher, completion=completion, scores=verdict.scores, faithful=faithful)
    trace.update(tags or {})
    return trace


def read_traces(
    path: str | Path, *, written_by: str = "01_synthesize", required: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Read a complete trace file strictly, in file order; every trace carries the ``required``
    fields (e.g. :data:`TRACE_FIELDS`), and a missing file names the notebook ``written_by``.

    Raises:
        FileNotFoundError: the file is missing (saying so when generation was interrupted).
        ValueError: a line that is not a JSON object, a trace lacking a required field, a repeated
            trace id (naming the file and line), or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        partial = partial_path(path)
        if partial.is_file():
            raise FileNotFoundError(
                f"{path} is missing but {partial.name} exists: trace generation was interrupted or some pairs "
                "failed; run 01_synthesize again to resume it"
            )
        raise FileNotFoundError(f"{path} is missing: run {written_by} first")
    traces: list[dict[str, Any]] = []
    ids = IdIndex()  # 1 and "1" are one id once written as text
    for lineno, record in iter_jsonl(path):
        missing = [name for name in required if name not in record]
        if missing:
            raise ValueError(
                f"{path} line {lineno}: trace {record.get('id', '?')!r} lacks field(s): {', '.join(missing)}"
            )
        ids.add(record.get("id"), f"{path} line {lineno}", f"line {lineno}", kind="trace id")
        traces.append(record)
    if not traces:
        raise ValueError(f"{path} holds no trace")
    return traces


class TraceGenerationError(RuntimeError):
    """Some pairs got no trace; ``failures`` counts them per error kind, ``n_written`` the traces in
    the ``.partial`` file."""

    def __init__(self, message: str, failures: dict[str, int] | None = None, n_written: int = 0) -> None:
        super().__init__(message)
        self.failures = dict(failures or {})
        self.n_written = n_written


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate_traces` did."""

    path: Path
    n_pairs: int
    n_resumed: int  # traces found from an earlier, interrupted run
    n_new: int  # traces written by this call
    n_faithful: int
    failures: dict[str, int] = field(default_factory=dict)


def partial_path(out_path: str | Path) -> Path:
    """Where :func:`generate_traces` appends while it runs: ``<out_path>.partial``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


def _index_done(
    records: list[dict[str, Any]], path: Path, ids: Collection[Any], teachers: Collection[str]
) -> dict[Any, dict[str, Any]]:
    """The traces already written to ``path`` by id; the first one of a repeated id is kept."""
    strangers = [r.get("id") for r in records if r.get("id") not in ids]
    if strangers:
        raise ValueError(
            f"{path} holds traces of {len(strangers)} pair(s) not in the input (first: {strangers[0]!r}); "
            "it belongs to another pair set: delete it or write elsewhere"
        )
    others = sorted({str(r.get("teacher")) for r in records} - set(teachers))
    if others:
        expected = " or ".join(repr(name) for name in sorted(teachers))
        raise ValueError(f"{path} holds traces by teacher {others[0]!r}, not {expected}: delete it or write elsewhere")
    done: dict[Any, dict[str, Any]] = {}
    for r in records:
        if r["id"] in done:
            logger.warning("%s: pair %r appears twice; keeping the first trace", path, r["id"])
            continue
        done[r["id"]] = r
    return done


def generate_traces(
    pairs: Sequence[Pair],
    teacher: Teacher,
    out_path: str | Path,
    progress: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> GenerationReport:
    """Judge every pair with ``teacher`` and write the traces to ``out_path`` (JSONL), resumably.

    Traces are appended to ``<out_path>.partial`` as they finish; when every pair has one, they are
    rewritten in pair order to ``out_path`` atomically and the ``.partial`` file is removed, so
    ``out_path`` exists only when complete. A rerun skips pairs already traced (a torn last line
    is truncated away). Pairs whose answer was unusable are counted and logged; then the
    ``.partial`` file is kept and :class:`TraceGenerationError` is raised. ``pairs`` have unique
    ``id`` and a ``label`` (only used to set ``faithful``); ``tags`` go into every new trace.

    Raises:
        ValueError: no pairs, repeated ids, an existing file written for other pairs or by
            another teacher, or (:class:`persrm_lib.data.pairs.PairFormatError`) a broken pair.
        TraceGenerationError: some pairs got no trace.
        TeacherError: the teacher cannot go on (e.g. the endpoint is down).
    """
    if not pairs:
        raise ValueError("generate_traces got no pairs")
    order: dict[Any, int] = {}
    for i, pair in enumerate(pairs):
        validate_pair(pair, f"pair {i}", required=TEACHER_PAIR_FIELDS)
        if pair["id"] in order:
            raise ValueError(f"pair id {pair['id']!r} is repeated (pairs {order[pair['id']]} and {i})")
        order[pair["id"]] = i
    out_path = Path(out_path)
    partial = partial_path(out_path)

    complete = read_traces(out_path) if out_path.is_file() else []
    done = _index_done(complete, out_path, order.keys(), teacher.trace_teachers())
    if len(done) == len(pairs):
        if partial.exists():
            logger.warning("%s is complete; removing the stale %s", out_path, partial)
            partial.unlink()
        return GenerationReport(out_path, len(pairs), len(done), 0, sum(bool(r.get("faithful")) for r in done.values()))
    repair_torn_tail(partial)
    # the .partial file is this function's own scratch file (completion order, maybe a repeat)
    unfinished = read_jsonl(partial) if partial.is_file() else []
    for key, record in _index_done(unfinished, partial, order.keys(), teacher.trace_teachers()).items():
        done.setdefault(key, record)
    n_resumed = len(done)
    if n_resumed:
        logger.info("resuming %s: %d of %d pairs already have a trace", out_path, n_resumed, len(pairs))
        if out_path.exists():  # the final name only ever holds a complete file: its records go to the partial one
            write_jsonl_atomic(list(done.values()), partial)
            out_path.unlink()

    remaining = [p for p in pairs if p["id"] not in done]
    teacher.prepare(pairs)
    failures: Counter[str] = Counter()
    results = teacher.judge_each(remaining)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(remaining), desc=f"traces ({teacher.name})")
    with JsonlAppender(partial) as out:
        for i, result in results:
            pair = remaining[i]
            if isinstance(result, TeacherResponseError):
                failures[result.kind] += 1
                logger.warning("no trace for pair %r: %s", pair["id"], result)
                continue
            record = make_trace(pair, teacher.trace_teacher(pair), result, tags)
            out.write(record)
            done[pair["id"]] = record
    if failures:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(failures.items()))
        raise TraceGenerationError(
            f"{sum(failures.values())} of {len(pairs)} pairs got no trace ({kinds}); the {len(done)} traces written "
            f"are kept in {partial}; run again to retry the rest. {out_path} was not written.",
            dict(failures),
            len(done),
        )
    write_jsonl_atomic([done[p["id"]] for p in pairs], out_path)
    partial.unlink(missing_ok=True)
    n_faithful = sum(bool(r.get("faithful")) for r in done.values())
    n_new = len(pairs) - n_resumed  # no failure: every pair now has a trace
    logger.info("wrote %d traces to %s (%d new, %d faithful)", len(pairs), out_path, n_new, n_faithful)
    return GenerationReport(out_path, len(pairs), n_resumed, n_new, n_faithful, {})
