"""Traces in both orders (issue: order-robust data): the rewrite of a trace for the swapped pair is
exact on real traces of the stylometric teacher, in both trace styles."""

from __future__ import annotations

import pytest
from real_pairs import real_pairs

from persrm_lib.core.output_format import render_output
from persrm_lib.teachers.stylometric import StylometricTeacher
from persrm_lib.teachers.swap import SwapError, both_orders, swap_completion, swap_text, swap_trace


@pytest.mark.parametrize("compact", [True, False])
def test_rewrite_equals_the_teacher_on_the_swapped_pair(compact):
    pairs = real_pairs()
    teacher = StylometricTeacher(compact=compact)
    teacher.prepare(pairs + [swap_trace({**p, "completion": render_output("c", "e", (1, 2))}) for p in pairs])
    mismatches = []
    for pair in pairs:
        trace = {**pair, "completion": teacher.judge(pair)}
        swapped = swap_trace(trace)
        rejudged = teacher.judge(swapped)
        if swapped["completion"] != rejudged:
            mismatches.append((pair["id"], swapped["completion"], rejudged))
    assert len(pairs) == 12
    assert mismatches == []


def test_swap_trace_exchanges_everything_and_marks_it():
    trace = {
        "id": "p",
        "label": "a",
        "response_a": "x",
        "response_b": "y",
        "scores": [7, 3.5],
        "completion": render_output("rhythm", "A 0.9, B 0.2; A.\nA is closer.", (7, 3.5)),
    }
    swapped = swap_trace(trace)
    assert (swapped["id"], swapped["label"], swapped["response_a"], swapped["response_b"]) == (
        "p:swapped",
        "b",
        "y",
        "x",
    )
    assert swapped["scores"] == [3.5, 7]
    assert swapped["completion"] == render_output("rhythm", "A 0.2, B 0.9; B.\nB is closer.", (3.5, 7))
    assert swapped["provenance"] == {"swapped": True}
    assert "evidence" not in swapped  # none to swap
    assert trace["label"] == "a"  # the input is not changed
    assert [r["label"] for r in both_orders([trace, swapped | {"id": "q"}])] == ["a", "b", "b", "a"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is closer.", "B is closer."),  # a name at the start of a sentence
        ("Response B wins; A.", "Response A wins; B."),
        ("B's rhythm", "B's rhythm"),  # a possessive is not a response name
        ("A-list words", "A-list words"),  # nor a hyphenated word
        ("ABBA and BA", "ABBA and BA"),  # nor a letter inside a word
        ("mean d A 0.52, B 0.67; the word", "mean d A 0.67, B 0.52; the word"),  # values follow their response
        ("A 0 (d=0.00); B 3.2 (d=4.02); A is closer.", "A 3.2 (d=4.02); B 0 (d=0.00); B is closer."),
        ("A 0.53, B 0.71 (lower is closer).", "A 0.71, B 0.53 (lower is closer)."),
        ("A is closer on 5 of 5 criteria, B on 0.", "A is closer on 0 of 5 criteria, B on 5."),
    ],
)
def test_swap_text(text, expected):
    assert swap_text(text) == expected


def test_swapping_twice_gives_the_original_completion():
    completion = render_output("c", "quotes: author 0, A 6.5, B 1.6; B.\nB is closer to the author.", (2.7, 3))
    assert swap_completion(swap_completion(completion)) == completion


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        (
            {"id": "p:swapped", "label": "a", "response_a": "x", "response_b": "y", "completion": "c"},
            "trace 'p:swapped' is already a swapped copy",
        ),
        (
            {"id": "p", "label": "a", "response_a": "x", "response_b": "y", "completion": "<scores>[1, 2]</scores>"},
            "trace 'p': the completion does not parse (tag <criteria> is missing): nothing to rewrite",
        ),
    ],
)
def test_bad_traces_are_refused(trace, message):
    with pytest.raises(SwapError) as info:
        swap_trace(trace)
    assert str(info.value) == message


def test_strict_refuses_an_article_that_would_be_read_as_a_name():
    completion = render_output("c", "A short sentence favours B.", (2, 6))
    assert swap_completion(completion) == render_output("c", "B short sentence favours A.", (6, 2))
    with pytest.raises(SwapError, match="starts a sentence with the article 'A'"):
        swap_completion(completion, strict=True)


def test_swap_trace_swaps_the_evidence_with_the_responses():
    row = {"criterion": "commas", "exemplars": "4.1", "a": "6.0", "b": "3.9", "better": "closer"}
    trace = {
        "id": "p",
        "label": "b",
        "response_a": "x",
        "response_b": "y",
        "evidence": {"rows": [row], "n_exemplars": 1},
        "completion": render_output("commas", "commas: author 4.1, A 6.0, B 3.9; B.\nB is closer.", (2, 8)),
    }
    swapped = swap_trace(trace)
    assert swapped["evidence"] == {"rows": [{**row, "a": "3.9", "b": "6.0"}], "n_exemplars": 1}
    assert swapped["completion"] == render_output(
        "commas", "commas: author 4.1, A 3.9, B 6.0; A.\nA is closer.", (8, 2)
    )
