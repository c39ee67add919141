"""Measured evidence in the prompt: a small table of stylometric measurements of the exemplars, A and B.

An ablation setting (``prompt.evidence``: ``none`` or ``stylometric``). With ``stylometric``, each
pair carries an ``evidence`` record, measured once when the pairs are built (notebook 01) by the
stylometric teacher fitted on the training texts
(:meth:`persrm_lib.teachers.stylometric.StylometricTeacher.evidence`), and the prompt builder
appends it as a table (:func:`evidence_table`). The teacher's trace then names the criteria it
weighs, cites only values that appear in the table, compares them and decides; the faithfulness
filter rejects a trace that cites a number the table does not hold (:func:`uncited_numbers`).

Why: a 135M-parameter student cannot compute a type-token ratio or a character n-gram cosine from
raw text, so a trace that cites measured values teaches it to invent numbers. With the values in
the prompt, the trace only has to copy and compare them (DESIGN.md, "Measured on an H200"; the
measurement there found the comparisons still at chance at 135M -- this module makes that
experiment part of the project).

The record (all values are the strings shown, so the table and the trace cite the same text)::

    {"rows": [{"criterion": "type-token ratio", "exemplars": "0.681", "a": "0.825", "b": "0.703",
               "better": "closer"}, ...],
     "n_exemplars": 1}

``better`` says how a row is read: ``closer`` (the value nearer the exemplars' is better),
``lower`` (a distance) or ``higher`` (a similarity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

EVIDENCE_KINDS: tuple[str, ...] = ("none", "stylometric")
BETTER = ("closer", "lower", "higher")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")


class EvidenceError(ValueError):
    """A pair whose evidence is missing or malformed (the message names the pair and the field)."""


def check_kind(kind: str) -> str:
    """Return ``kind`` when it is a known evidence setting, else raise a ValueError naming the choices."""
    if kind not in EVIDENCE_KINDS:
        raise ValueError(f"prompt.evidence must be one of {', '.join(EVIDENCE_KINDS)}, got {kind!r}")
    return kind


def check_evidence(pair: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pair's evidence record, checked.

    Raises:
        EvidenceError: no ``evidence`` field (run notebook 01 with ``prompt.evidence=stylometric``),
            or a row without its fields, naming the pair.
    """
    pid = pair.get("id", "?")
    evidence = pair.get("evidence")
    if not isinstance(evidence, Mapping) or not isinstance(evidence.get("rows"), list) or not evidence["rows"]:
        raise EvidenceError(
            f"pair {pid!r} has no evidence record: build the pairs with prompt.evidence='stylometric' (notebook 01)"
        )
    for i, row in enumerate(evidence["rows"]):
        missing = [k for k in ("criterion", "exemplars", "a", "b", "better") if not isinstance(row.get(k), str)]
        if missing:
            raise EvidenceError(f"pair {pid!r}: evidence row {i} lacks text field(s) {', '.join(missing)}")
        if row["better"] not in BETTER:
            raise EvidenceError(f"pair {pid!r}: evidence row {i} has better={row['better']!r}, not one of {BETTER}")
    return evidence


def evidence_table(pair: Mapping[str, Any]) -> str:
    """The measurements as plain text for the user turn, A and B side by side.

    >>> pair = {"id": "p", "evidence": {"rows": [
    ...     {"criterion": "type-token ratio", "exemplars": "0.681", "a": "0.825", "b": "0.703", "better": "closer"},
    ...     {"criterion": "character n-grams", "exemplars": "-", "a": "0.11", "b": "0.16", "better": "higher"}]}}
    >>> print(evidence_table(pair))
    Measurements (exemplars | A | B):
    - type-token ratio: 0.681 | 0.825 | 0.703 (nearer the exemplars is closer)
    - character n-grams: - | 0.11 | 0.16 (higher is closer)
    """
    evidence = check_evidence(pair)
    reading = {"closer": "nearer the exemplars is closer", "lower": "lower is closer", "higher": "higher is closer"}
    lines = ["Measurements (exemplars | A | B):"]
    for row in evidence["rows"]:
        lines.append(f"- {row['criterion']}: {row['exemplars']} | {row['a']} | {row['b']} ({reading[row['better']]})")
    return "\n".join(lines)


def swap_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The record for the swapped pair: the A and B values exchange places."""
    out = dict(evidence)
    out["rows"] = [{**row, "a": row["b"], "b": row["a"]} for row in evidence["rows"]]
    return out


def table_numbers(pair: Mapping[str, Any]) -> set[str]:
    """Every number the table shows, as written (values, and digits in criterion names such as "3-5-gram")."""
    rows = check_evidence(pair)["rows"]
    keys = ("criterion", "exemplars", "a", "b")
    return {value for row in rows for key in keys for value in _NUMBER.findall(row[key])}


def uncited_numbers(text: str, pair: Mapping[str, Any], ignore: Sequence[str] = ()) -> list[str]:
    """Numbers in ``text`` that the pair's evidence table does not show (in order of appearance).

    Args:
        text: a trace's ``<eval>`` section (the scores are not part of it).
        pair: the pair, with its evidence.
        ignore: numbers allowed anyway (e.g. counts such as "3 of 5").

    >>> pair = {"id": "p", "evidence": {"rows": [
    ...     {"criterion": "ttr", "exemplars": "0.681", "a": "0.825", "b": "0.703", "better": "closer"}]}}
    >>> uncited_numbers("ttr: author 0.681, A 0.825, B 0.71; B.", pair)
    ['0.71']
    """
    allowed = table_numbers(pair) | set(ignore)
    return [number for number in _NUMBER.findall(text) if number not in allowed]


def attach_evidence(pairs: Sequence[Mapping[str, Any]], measure: Any) -> list[dict[str, Any]]:
    """Pairs with their ``evidence`` record, measured by ``measure(pair) -> dict`` (the stylometric
    teacher's :meth:`~persrm_lib.teachers.stylometric.StylometricTeacher.evidence`)."""
    return [{**pair, "evidence": measure(pair)} for pair in pairs]
