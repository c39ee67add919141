"""Measured evidence in the prompt (``prompt.evidence``: ``none`` or ``stylometric``; docs/design.md,
"Measured on an H200"): a table of stylometric measurements of the exemplars, A and B, that the
prompt shows (:func:`evidence_table`) and a trace may cite (:func:`uncited_numbers`). The record
(values are the strings shown)::

    {"rows": [{"criterion": "type-token ratio", "exemplars": "0.681", "a": "0.825", "b": "0.703",
               "better": "closer"}, ...],
     "n_exemplars": 3,
     "by_count": {"1": [...rows measured on the first exemplar...]}}

``better``: ``closer`` (nearer the exemplars' value), ``lower`` (a distance) or ``higher`` (a
similarity). ``by_count`` (optional): rows for the other exemplar counts the pair is read with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.config import EVIDENCE_KINDS
from ..core.prompt import register_pair_block

EVIDENCE_FIELD = "evidence"  # the pair field that carries the record
BETTER = ("closer", "lower", "higher")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")


class EvidenceError(ValueError):
    """A pair whose evidence is missing or malformed (the message names the pair and the field)."""


def check_kind(kind: str) -> str:
    """``kind`` when it is a known evidence setting, else ValueError naming the choices."""
    if kind not in EVIDENCE_KINDS:
        raise ValueError(f"prompt.evidence must be one of {', '.join(EVIDENCE_KINDS)}, got {kind!r}")
    return kind


def has_evidence(pair: Mapping[str, Any]) -> bool:
    """Whether the pair carries an evidence record (an ``evidence`` field that is not None)."""
    return pair.get(EVIDENCE_FIELD) is not None


def _check_rows(rows: Any, pid: Any, where: str) -> None:
    """Check a list of rows (``where`` names it in messages)."""
    if not isinstance(rows, list) or not rows:
        raise EvidenceError(f"pair {pid!r}: {where} must be a non-empty list of rows")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise EvidenceError(f"pair {pid!r}: {where} row {i} is a {type(row).__name__}, not an object")
        missing = [k for k in ("criterion", "exemplars", "a", "b", "better") if not isinstance(row.get(k), str)]
        if missing:
            raise EvidenceError(f"pair {pid!r}: {where} row {i} lacks text field(s) {', '.join(missing)}")
        if row["better"] not in BETTER:
            raise EvidenceError(f"pair {pid!r}: {where} row {i} has better={row['better']!r}, not one of {BETTER}")


def check_evidence(pair: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pair's evidence record, checked; EvidenceError naming the pair (and row) when missing or malformed."""
    pid = pair.get("id", "?")
    evidence = pair.get("evidence")
    if not isinstance(evidence, Mapping) or not isinstance(evidence.get("rows"), list) or not evidence["rows"]:
        raise EvidenceError(
            f"pair {pid!r} has no evidence record: build the pairs with prompt.evidence='stylometric' (notebook 01)"
        )
    _check_rows(evidence["rows"], pid, "evidence")
    n = evidence.get("n_exemplars")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise EvidenceError(f"pair {pid!r}: evidence n_exemplars must be a positive integer, got {n!r}")
    by_count = evidence.get("by_count")
    if by_count is not None:
        if not isinstance(by_count, Mapping):
            raise EvidenceError(f"pair {pid!r}: evidence by_count must be an object keyed by exemplar count")
        for key, rows in by_count.items():
            if not str(key).isdigit() or int(key) < 1:
                raise EvidenceError(f"pair {pid!r}: evidence by_count key {key!r} is not an exemplar count")
            _check_rows(rows, pid, f"evidence by_count[{key!r}]")
    return evidence


def evidence_rows(pair: Mapping[str, Any], n_exemplars: int | None = None) -> list[Mapping[str, str]]:
    """The rows measured on the first ``n_exemplars`` exemplars (None: the pair's own count);
    EvidenceError when the record is malformed (:func:`check_evidence`) or holds no rows for that
    count (naming the pair and the counts it holds)."""
    evidence = check_evidence(pair)
    own = evidence.get("n_exemplars")
    if n_exemplars is None or own is None or n_exemplars == own:
        return list(evidence["rows"])
    by_count = evidence.get("by_count") or {}
    if str(n_exemplars) in by_count:
        return list(by_count[str(n_exemplars)])
    held = ", ".join(str(k) for k in sorted({own, *(int(k) for k in by_count)}))
    raise EvidenceError(
        f"pair {pair.get('id', '?')!r}: its evidence was measured on {held} exemplar(s), the prompt shows "
        f"{n_exemplars}: build the pairs with that count among the evidence counts (attach_to_splits counts=...)"
    )


def evidence_table(pair: Mapping[str, Any], n_exemplars: int | None = None) -> str:
    """The rows of :func:`evidence_rows` as plain text for the user turn: a
    ``Measurements (exemplars | A | B):`` line, then one ``- criterion: e | a | b (reading)`` line per row."""
    reading = {"closer": "nearer the exemplars is closer", "lower": "lower is closer", "higher": "higher is closer"}
    rows = evidence_rows(pair, n_exemplars)
    lines = [f"- {r['criterion']}: {r['exemplars']} | {r['a']} | {r['b']} ({reading[r['better']]})" for r in rows]
    return "\n".join(["Measurements (exemplars | A | B):", *lines])


register_pair_block(EVIDENCE_FIELD, evidence_table)  # the prompt builder shows it after Response B


def swap_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The record for the swapped pair: the A and B values exchange places (in every count's rows)."""

    def swapped(rows: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        return [{**row, "a": row["b"], "b": row["a"]} for row in rows]

    out = dict(evidence)
    out["rows"] = swapped(evidence["rows"])
    if evidence.get("by_count") is not None:
        out["by_count"] = {key: swapped(rows) for key, rows in evidence["by_count"].items()}
    return out


def table_numbers(pair: Mapping[str, Any], n_exemplars: int | None = None) -> set[str]:
    """Every number the table shows, as written (values, and digits in criterion names such as "3-5-gram")."""
    keys = ("criterion", "exemplars", "a", "b")
    return {value for row in evidence_rows(pair, n_exemplars) for key in keys for value in _NUMBER.findall(row[key])}


# Counts a trace may write without the table showing them: a tally "N of M" with N <= M <= rows, a
# line-opening list marker "N." / "N)" with N <= rows, and "exemplar N" with N <= exemplars shown.
_TALLY = re.compile(r"(?<![\w.])(\d+) (?:out )?of (\d+)(?!\w|\.\d)")
_LIST_MARKER = re.compile(r"^[ \t]*(\d+)[.)](?=\s)", re.M)
_EXEMPLAR_REF = re.compile(r"\b[Ee]xemplar #?(\d+)(?!\w|\.\d)")


def _counts_removed(text: str, n_rows: int, n_exemplars: int) -> str:
    """``text`` with the allowed counts blanked out."""

    def tally(m: re.Match[str]) -> str:
        return " " if int(m.group(1)) <= int(m.group(2)) <= n_rows else m.group(0)

    def marker(m: re.Match[str]) -> str:
        return " " if 1 <= int(m.group(1)) <= n_rows else m.group(0)

    def exemplar(m: re.Match[str]) -> str:
        return "exemplar" if 1 <= int(m.group(1)) <= n_exemplars else m.group(0)

    return _EXEMPLAR_REF.sub(exemplar, _LIST_MARKER.sub(marker, _TALLY.sub(tally, text)))


def uncited_numbers(
    text: str,
    pair: Mapping[str, Any],
    ignore: Sequence[str] = (),
    n_exemplars: int | None = None,
    allow_counts: bool = True,
) -> list[str]:
    """Numbers in ``text`` that the pair's evidence table does not show (in order of appearance).

    Args:
        text: a trace's ``<eval>`` section (the scores are not part of it).
        ignore: numbers allowed anyway, wherever they appear.
        n_exemplars: the exemplars the prompt showed (None: the pair's own count; see :func:`evidence_rows`).
        allow_counts: allow the counts that are not measurements (a tally "N of M", a list marker
            "N.", "exemplar N", each within the table's rows or the exemplars shown).

    Raises:
        EvidenceError: the pair has no (valid) evidence for ``n_exemplars``.
    """
    rows = evidence_rows(pair, n_exemplars)
    allowed = table_numbers(pair, n_exemplars) | set(ignore)
    if allow_counts:
        shown = n_exemplars or check_evidence(pair).get("n_exemplars") or len(pair.get("exemplars") or ()) or 1
        text = _counts_removed(text, len(rows), int(shown))
    return [number for number in _NUMBER.findall(text) if number not in allowed]


def evidence_kind(pairs: Sequence[Mapping[str, Any]], where: str = "the pairs") -> str:
    """``"stylometric"`` when every pair carries evidence, ``"none"`` when none does; EvidenceError
    for no pairs, or some with evidence and some without (naming one of each)."""
    if not pairs:
        raise EvidenceError(f"{where}: no pairs to read the evidence setting from")
    with_evidence = [p for p in pairs if has_evidence(p)]
    if not with_evidence:
        return "none"
    if len(with_evidence) < len(pairs):
        without = next(p for p in pairs if not has_evidence(p))
        raise EvidenceError(
            f"{where}: {len(with_evidence)} of {len(pairs)} pairs carry evidence (e.g. {with_evidence[0].get('id', '?')!r}) "
            f"and the others do not (e.g. {without.get('id', '?')!r}): build every split with one prompt.evidence setting"
        )
    return "stylometric"


def attach_evidence(pairs: Sequence[Mapping[str, Any]], measure: Any) -> list[dict[str, Any]]:
    """Pairs with their ``evidence`` record, measured by ``measure(pair) -> dict`` (the stylometric
    teacher's :meth:`~persrm_lib.teachers.stylometric.StylometricTeacher.evidence`)."""
    return [{**pair, "evidence": measure(pair)} for pair in pairs]


def attach_to_splits(
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    teacher: Any,
    fit_pairs: Sequence[Mapping[str, Any]] | None = None,
    counts: Sequence[int] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Every pair of every split with its evidence record (notebook 01, ``prompt.evidence=stylometric``):
    measured on its own ``n_exemplars`` (``rows``) and on each other count of ``counts`` it has
    exemplars for (``by_count``). A new dict, same keys and order, of new pair dicts.

    Args:
        splits: split name -> pairs (``train``, ``validation``, ``test_<benchmark>`` ...).
        teacher: the stylometric teacher, unfitted (its ``prepare`` and ``evidence`` are used); it is
            fitted once on ``fit_pairs`` (default ``splits["train"]``: training texts only; the traced
            subset when the teacher traces one, so the trace and the table cite the same values).
        counts: exemplar counts the pairs are also read with (e.g. ``data.eval_exemplar_counts``).

    Raises:
        KeyError: no ``train`` split and no ``fit_pairs``.
        ValueError: no training pair to fit on, or a count below 1.
    """
    if fit_pairs is None:
        if "train" not in splits:
            raise KeyError(
                f"attach_to_splits: no 'train' split among {', '.join(splits) or 'none'} to fit the teacher on"
            )
        fit_pairs = splits["train"]
    if not fit_pairs:
        raise ValueError("attach_to_splits: no training pair to fit the teacher on")
    if any(int(k) < 1 for k in counts):
        raise ValueError(f"attach_to_splits: exemplar counts must be at least 1, got {tuple(counts)}")
    teacher.prepare(fit_pairs)

    def measure(pair: Mapping[str, Any]) -> dict[str, Any]:
        record = dict(teacher.evidence(pair))
        own = record.get("n_exemplars")
        others = sorted({int(k) for k in counts if int(k) != own and int(k) <= len(pair["exemplars"])})
        by_count = {}
        for k in others:
            measured = teacher.evidence({**pair, "n_exemplars": k})
            if measured.get("n_exemplars") != k:  # a teacher with a fixed n_exemplars ignores the pair's
                raise ValueError(
                    f"attach_to_splits: the teacher measured pair {pair.get('id', '?')!r} on "
                    f"{measured.get('n_exemplars')} exemplar(s) when asked for {k}: build it with n_exemplars=None"
                )
            by_count[str(k)] = measured["rows"]
        if by_count:
            record["by_count"] = by_count
        return record

    return {name: attach_evidence(pairs, measure) for name, pairs in splits.items()}
