"""Evidence in the prompt (prompt.evidence = stylometric): the table, its swap, the cited-number check,
and the stylometric teacher citing only what the table shows."""

from __future__ import annotations

import pytest
from real_pairs import real_pairs

from persrm_lib.core.output_format import parse_output
from persrm_lib.data.evidence import (
    EvidenceError,
    check_kind,
    evidence_table,
    swap_evidence,
    table_numbers,
    uncited_numbers,
)
from persrm_lib.teachers.stylometric import StylometricTeacher
from persrm_lib.teachers.swap import swap_trace

ROW = {"criterion": "character 3-5-gram cosine", "exemplars": "-", "a": "0.11", "b": "0.16", "better": "higher"}


def test_table_puts_a_and_b_side_by_side():
    pair = {"id": "p", "evidence": {"rows": [ROW]}}
    assert evidence_table(pair) == (
        "Measurements (exemplars | A | B):\n- character 3-5-gram cosine: - | 0.11 | 0.16 (higher is closer)"
    )
    assert table_numbers(pair) == {"3", "5", "0.11", "0.16"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A 0.11, B 0.16; B.", []),  # every value is in the table
        ("A 0.11, B 0.17; B.", ["0.17"]),  # a value the table does not show
        ("character 3-5-gram cosine: A 0.11.", []),  # digits of a criterion name
        ("A 0.110, B 16", ["0.110", "16"]),  # written differently is not the same text
    ],
)
def test_uncited_numbers(text, expected):
    assert uncited_numbers(text, {"id": "p", "evidence": {"rows": [ROW]}}) == expected


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ({"id": "p"}, "pair 'p' has no evidence record: build the pairs with prompt.evidence='stylometric'"),
        ({"id": "p", "evidence": {"rows": [{**ROW, "a": 0.11}]}}, "pair 'p': evidence row 0 lacks text field(s) a"),
        ({"id": "p", "evidence": {"rows": [{**ROW, "better": "best"}]}}, "pair 'p': evidence row 0 has better='best'"),
    ],
)
def test_bad_evidence_is_refused_naming_the_pair(pair, message):
    with pytest.raises(EvidenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evidence_table(pair)


def test_unknown_kind():
    assert check_kind("none") == "none"
    with pytest.raises(ValueError, match="prompt.evidence must be one of none, stylometric, got 'numbers'"):
        check_kind("numbers")


def test_the_teacher_cites_only_table_values_and_the_swap_is_exact_on_real_pairs():
    pairs = real_pairs()
    teacher = StylometricTeacher(compact=True)
    teacher.prepare(pairs)
    for pair in pairs:
        pair = {**pair, "evidence": teacher.evidence(pair)}
        completion = teacher.judge(pair)
        assert uncited_numbers(parse_output(completion).evaluation, pair) == []
        swapped = swap_trace({**pair, "completion": completion})
        assert swap_evidence(pair["evidence"]) == teacher.evidence(swapped)
    assert [row["better"] for row in pair["evidence"]["rows"]] == ["closer"] * 3 + ["lower", "higher"]
