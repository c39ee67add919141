"""Training inputs, checked before a model is loaded: the SFT traces, the GRPO pairs, the GRPO
validation pairs, and the TRL datasets built from them (PersRM-R1 §3.2-3.3). Verdicts are read by
the ONE rule (:class:`persrm_lib.core.verdict.Verdict`), as the filter and the evaluation read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import runfiles, verdict
from ..core.config import Profile
from ..core.jsonl import iter_jsonl
from ..core.pointwise import SIDES, pointwise_outcome
from ..core.prompt import build_messages, build_pointwise_messages
from ..data.pairs import IdIndex, PairFormatError, validate_pair
from ..teachers.persona import pointwise_completions
from ..teachers.traces import read_traces

Source = str | Path | Sequence[Mapping[str, Any]]


class TrainingDataError(ValueError):
    """Training input that cannot be trained on; the message names the file, the record and why."""


class CheckedPairs(list):
    """Pairs that :func:`check_pairs` read and checked (returned as they are when checked again)."""


class CheckedTraces(list):
    """Traces that :func:`check_traces` read and checked (returned as they are when checked again)."""


def check_traces(source: Source) -> list[dict[str, Any]]:
    """Read and check SFT traces (pairs plus ``teacher, completion, scores, faithful``) from a JSONL
    file (``runfiles.faithful_traces_path(run)``) or a list, in order.

    Raises:
        TrainingDataError: no trace; a trace that breaks the pair contract, is not marked
            ``faithful: true``, or whose completion does not parse or does not prefer the labelled
            response; a file that :func:`persrm_lib.teachers.traces.read_traces` refuses.
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    if isinstance(source, CheckedTraces):
        return source
    if isinstance(source, str | Path):
        name = str(source)
        try:
            read = read_traces(source, written_by="02_filter_audit")
        except ValueError as exc:  # a malformed line, a repeated id, an empty file
            raise TrainingDataError(f"cannot train on these traces: {exc}") from exc
        records = [(f"{Path(source).name} record {i}", rec) for i, rec in enumerate(read, start=1)]
    else:
        name = "the given traces"
        records = [(f"traces {i}", dict(rec)) for i, rec in enumerate(source)]
    if not records:
        raise TrainingDataError(f"no traces to train on: {name} holds no trace (run 01_synthesize and 02_filter_audit)")
    traces = []
    for where, rec in records:
        try:
            trace = validate_pair(rec, where)
        except PairFormatError as exc:
            raise TrainingDataError(f"trace {exc}") from exc
        tid = trace.get("id")
        for key in ("completion", "faithful"):
            if key not in trace:
                raise TrainingDataError(f"{where} (trace {tid!r}): field {key!r} is missing; is this a trace file?")
        if trace["faithful"] is not True:
            raise TrainingDataError(
                f"{where} (trace {tid!r}) is not marked faithful (faithful={trace['faithful']!r}); train on "
                "the filtered traces (runfiles.faithful_traces_path) written by 02_filter_audit"
            )
        judged = verdict.read_verdict(trace["completion"])
        if not judged.format_ok:
            raise TrainingDataError(f"{where} (trace {tid!r}): completion does not parse: {judged.reason}")
        if judged.outcome(trace["label"]) != verdict.CORRECT:
            raise TrainingDataError(
                f"{where} (trace {tid!r}) is marked faithful but its scores {judged.scores} do not "
                f"prefer the labelled response {trace['label']!r}"
            )
        traces.append(trace)
    return CheckedTraces(traces)


def check_verdicts(examples: Sequence[Mapping[str, Any]]) -> None:
    """Refuse (:class:`TrainingDataError`, ``refusing to train on example N (trace 'id'): ...``) the
    first SFT example going to the trainer whose completion does not parse, does not score the
    labelled response strictly higher, or disagrees with its ``scores`` field."""
    for i, example in enumerate(examples):
        where = f"example {i} (trace {example.get('id', '?')!r})"
        judged = verdict.read_verdict(example.get("completion"))
        try:
            outcome = judged.outcome(example.get("label"))
        except ValueError as exc:  # a label other than a/b
            raise TrainingDataError(f"refusing to train on {where}: {exc}") from exc
        if not judged.format_ok:
            raise TrainingDataError(f"refusing to train on {where}: its completion does not parse ({judged.reason})")
        if outcome != verdict.CORRECT:
            raise TrainingDataError(
                f"refusing to train on {where}: its scores {judged.scores} do not prefer the labelled response "
                f"{example['label']!r}"
            )
        scores = example.get("scores")
        if scores is not None and [float(s) for s in scores] != judged.scores:
            raise TrainingDataError(
                f"refusing to train on {where}: its scores field {list(scores)} is not what its completion says "
                f"({judged.scores})"
            )


def check_pairs(source: Source) -> list[dict[str, Any]]:
    """Read and check GRPO pairs (the pair contract) from a JSONL file or a list, in order.

    Raises:
        TrainingDataError: no pair at all, a pair that breaks the contract, or an id that repeats
            (or collides once written as text), naming where.
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    if isinstance(source, CheckedPairs):
        return source
    if isinstance(source, str | Path):
        name = str(source)
        records = [(f"{Path(source).name} line {lineno}", rec) for lineno, rec in iter_jsonl(source)]
    else:
        name = "the given pairs"
        records = [(f"pairs {i}", dict(rec)) for i, rec in enumerate(source)]
    if not records:
        raise TrainingDataError(f"no pairs to train on: {name} holds no pair (run 01_synthesize)")
    pairs = []
    ids = IdIndex()
    for where, rec in records:
        try:
            pair = validate_pair(rec, where)
            ids.add(pair["id"], where, where)
        except PairFormatError as exc:
            raise TrainingDataError(f"pair {exc}") from exc
        pairs.append(pair)
    return CheckedPairs(pairs)


def grpo_validation_pairs(profile: Profile, run: str | Path, source: Source | None = None) -> list[dict[str, Any]]:
    """The first ``grpo.eval_pairs`` of ``source`` (default: the run's validation pairs, ``[]``
    without them; ``[]`` too when ``grpo.eval_every`` or ``grpo.eval_pairs`` is 0), checked by
    :func:`check_pairs` (its errors prefixed ``validation pairs:``)."""
    if profile.grpo.eval_every == 0 or profile.grpo.eval_pairs == 0:
        return []
    if source is None:
        source = runfiles.pairs_path(Path(run), "validation")
        if not source.is_file():
            return []
    try:
        return check_pairs(source)[: profile.grpo.eval_pairs]
    except TrainingDataError as exc:
        raise TrainingDataError(f"validation pairs: {exc}") from exc


def sft_rows(
    traces: Sequence[Mapping[str, Any]], tokenizer: Any = None, mode: str = "pairwise"
) -> list[tuple[str, list[dict[str, str]], str]]:
    """``(trace id, prompt messages, completion)`` per SFT example, in order: pairwise, one per trace;
    pointwise (:mod:`persrm_lib.core.pointwise`), one per response, with the persona teacher's
    pointwise completions (:class:`TrainingDataError` for a trace that is not a persona pair, or
    whose scores do not put each response on its side of the midpoint)."""
    rows: list[tuple[str, list[dict[str, str]], str]] = []
    for t in traces:
        n = verdict.exemplar_count(t)
        if mode == "pairwise":
            rows.append((str(t.get("id")), build_messages(t, n, tokenizer=tokenizer), t["completion"]))
            continue
        try:
            completions = pointwise_completions(t, n)
        except ValueError as exc:
            raise TrainingDataError(f"trace {t.get('id')!r}: {exc}") from exc
        for side, completion in zip(SIDES, completions, strict=True):
            if pointwise_outcome(completion, t["label"] == side) != 1:
                raise TrainingDataError(
                    f"trace {t.get('id')!r}: the pointwise completion for response {side.upper()} does not put it on "
                    f"its side of the midpoint: {completion!r}"
                )
            rows.append(
                (f"{t.get('id')}/{side}", build_pointwise_messages(t, side, n, tokenizer=tokenizer), completion)
            )
    return rows


def sft_dataset(traces: Sequence[Mapping[str, Any]], tokenizer: Any = None, mode: str = "pairwise") -> Any:
    """TRL's conversational prompt-completion ``datasets.Dataset`` of :func:`sft_rows` (``tokenizer``
    neutralises its own special tokens in the user text)."""
    from datasets import Dataset

    rows = sft_rows(traces, tokenizer, mode)
    return Dataset.from_dict(
        {
            "prompt": [messages for _, messages, _ in rows],
            "completion": [[{"role": "assistant", "content": completion}] for _, _, completion in rows],
        }
    )


def grpo_dataset(rows: Sequence[Mapping[str, Any]], tokenizer: Any = None, mode: str = "pairwise") -> Any:
    """Conversational prompt-only ``datasets.Dataset`` (pointwise: of :func:`persrm_lib.core.pointwise.side_rows`)
    with the ``label``, ``pair_id`` (and pointwise ``side``) columns that TRL passes to the reward."""
    from datasets import Dataset

    columns: dict[str, list[Any]] = {"label": [r["label"] for r in rows], "pair_id": [str(r["id"]) for r in rows]}
    if mode == "pointwise":
        columns["side"] = [r["side"] for r in rows]
        prompts = [build_pointwise_messages(r, r["side"], verdict.exemplar_count(r), tokenizer=tokenizer) for r in rows]
    else:
        prompts = [build_messages(r, verdict.exemplar_count(r), tokenizer=tokenizer) for r in rows]
    return Dataset.from_dict({"prompt": prompts, **columns})
