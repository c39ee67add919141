"""The faithfulness filter and the audit helpers of notebook 02."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persrm_lib.core.jsonl import read_jsonl
from persrm_lib.core.output_format import render_output
from persrm_lib.core.verdict import CORRECT, read_verdict
from persrm_lib.teachers.filtering import (
    audit_summary,
    check_against_pairs,
    chosen_longer_share,
    chosen_rejected,
    faithfulness_by,
    faithfulness_filter,
    length_table,
    position_balance,
    reason_category,
    separability_auc,
    style_differences,
    write_faithful,
)
from persrm_lib.teachers.traces import read_traces


def trace(
    i: int, completion: str, label: str = "a", negative_kind: str = "random", teacher: str = "t"
) -> dict[str, Any]:
    return {
        "id": f"p{i}",
        "label": label,
        "teacher": teacher,
        "positive_kind": "intra_author",
        "negative_kind": negative_kind,
        "completion": completion,
        "scores": "stale",
        "faithful": "stale",
    }


GOOD_A = render_output("c", "e", (8, 2))
GOOD_B = render_output("c", "e", (1, 9.5))
TIE = render_output("c", "e", (5, 5))


@pytest.mark.parametrize(
    ("completion", "label", "expected"),
    [
        # chosen A scored higher: faithful
        (GOOD_A, "a", ([8.0, 2.0], True, None)),
        # chosen B scored higher: faithful
        (GOOD_B, "b", ([1.0, 9.5], True, None)),
        # scores contradict the label
        (GOOD_A, "b", ([8.0, 2.0], False, None)),
        # a tie is not a preference
        (TIE, "a", ([5.0, 5.0], False, None)),
        # a format violation: no scores, the parser's reason
        ("<criteria>c</criteria><eval>e</eval>", "a", (None, False, "tag <scores> is missing")),
        # a score out of range
        (
            "<criteria>c</criteria><eval>e</eval><scores>[11, 2]</scores>",
            "a",
            (None, False, "score 11 is outside [0, 10]"),
        ),
        # not text at all
        (None, "a", (None, False, "completion is a NoneType, not text")),
    ],
)
def test_the_filter_reads_verdicts_with_the_one_rule(completion: Any, label: str, expected: tuple) -> None:
    verdict = read_verdict(completion)
    assert (verdict.scores, verdict.outcome(label) == CORRECT, verdict.reason) == expected
    record = faithfulness_filter([trace(0, completion, label)]).traces[0]
    assert (record["scores"], record["faithful"]) == expected[:2]


def test_assess_bad_label() -> None:
    with pytest.raises(ValueError, match="label must be 'a' or 'b', got 'A'"):
        read_verdict(GOOD_A).outcome("A")


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        # plain reasons stay as they are
        ("tag <eval> is missing", "tag <eval> is missing"),
        # the offending value is dropped
        ("score 11 is outside [0, 10]", "score … is outside [0, 10]"),
        ("score 'x' is not a number", "score … is not a number"),
        # the quoted excerpt after ', got' is dropped
        ("scores must be written as [s_a, s_b], got '7 3'", "scores must be written as [s_a, s_b]"),
        ("expected exactly two scores, got 3", "expected exactly two scores"),
    ],
)
def test_reason_category(reason: str, category: str) -> None:
    assert reason_category(reason) == category


def test_faithfulness_filter_keeps_agreeing_traces_and_reports_per_strategy() -> None:
    traces = [
        trace(0, GOOD_A, "a", "random"),  # kept
        trace(1, GOOD_A, "b", "random"),  # unfaithful
        trace(2, TIE, "a", "random"),  # tie: unfaithful
        trace(3, GOOD_B, "b", "same_era"),  # kept
        trace(4, "no format", "a", "same_era"),  # unparsed
        trace(5, "<criteria>c</criteria><eval>e</eval><scores>[1]</scores>", "b", "same_era"),  # unparsed
        trace(6, GOOD_A, "a", "same_era", teacher="u"),  # kept, other teacher
    ]
    result = faithfulness_filter(traces)
    assert [r["id"] for r in result.kept] == ["p0", "p3", "p6"]
    assert [r["faithful"] for r in result.traces] == [True, False, False, True, False, False, True]
    assert result.traces[1]["scores"] == [8.0, 2.0] and result.traces[4]["scores"] is None
    assert result.kept_fraction == pytest.approx(3 / 7)
    assert result.outcomes == {"faithful": 3, "unfaithful": 2, "uncited": 0, "unparsed": 2}
    assert result.parse_failures == {"expected exactly two scores": 1, "tag <criteria> is missing": 1}
    table = result.by_strategy.set_index(["teacher", "negative_kind"])
    assert table.loc[("t", "random"), ["n", "kept", "unfaithful", "uncited", "unparsed"]].tolist() == [3, 1, 2, 0, 0]
    assert table.loc[("t", "same_era"), ["n", "kept", "unfaithful", "uncited", "unparsed"]].tolist() == [3, 1, 0, 0, 2]
    assert "uncited" not in result.traces[0]  # a pair without evidence is not checked for cited numbers
    assert table.loc[("t", "random"), "kept_fraction"] == pytest.approx(1 / 3)
    assert table.loc[("u", "same_era"), "kept_fraction"] == 1.0
    # the input records are not modified
    assert traces[0]["faithful"] == "stale"


@pytest.mark.parametrize(
    ("traces", "error", "message"),
    [
        # nothing to filter
        ([], ValueError, "empty trace set"),
        # a trace without its completion
        (
            [{k: v for k, v in trace(0, GOOD_A).items() if k != "completion"}],
            KeyError,
            "trace 0 \\(id 'p0'\\) lacks field\\(s\\): completion",
        ),
        # a label that is not a or b
        (
            [trace(0, GOOD_A), trace(1, GOOD_A, label="c")],
            ValueError,
            "trace 1 \\(id 'p1'\\): label must be 'a' or 'b', got 'c'",
        ),
        # not a record
        (["text"], TypeError, "trace 0 is a str, not a mapping"),
    ],
)
def test_faithfulness_filter_bad_input(traces: list[Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        faithfulness_filter(traces)


def pair(
    i: int, chosen: str, rejected: str, label: str, negative_kind: str = "random", exemplar: str = "x"
) -> dict[str, Any]:
    a, b = (chosen, rejected) if label == "a" else (rejected, chosen)
    return {
        "id": f"p{i}",
        "label": label,
        "response_a": a,
        "response_b": b,
        "negative_kind": negative_kind,
        "author": f"au{i % 2}",
        "exemplars": [exemplar],
        "n_exemplars": 1,
    }


def test_chosen_rejected_follows_the_label() -> None:
    assert chosen_rejected(pair(0, "C", "R", "a")) == ("C", "R")
    assert chosen_rejected(pair(0, "C", "R", "b")) == ("C", "R")


def test_length_table_and_chosen_longer_share() -> None:
    records = [
        pair(0, "one two three", "one", "a"),  # chosen longer
        pair(1, "one", "one two", "b"),  # chosen shorter
        pair(2, "a b", "c d", "a"),  # tie: counts half
    ]
    table = length_table(records)
    assert table[table.role == "chosen"]["words"].tolist() == [3, 1, 2]
    assert table[table.role == "rejected"]["words"].tolist() == [1, 2, 2]
    assert chosen_longer_share(records) == pytest.approx(1.5 / 3)
    with pytest.raises(ValueError, match="chosen_longer_share got no records"):
        chosen_longer_share([])


def test_position_balance() -> None:
    records = [pair(i, "c", "r", "a" if i < 3 else "b", "random" if i < 4 else "same_era") for i in range(6)]
    table = position_balance(records).set_index("negative_kind")
    # random: a, a, a, b -> 3 of 4; same_era: b, b -> 0 of 2; all: 3 of 6
    assert table.loc["random", ["n", "label_a"]].tolist() == [4, 3]
    assert table.loc["same_era", "share_a"] == 0.0
    assert table.loc["all", "share_a"] == 0.5
    assert table.loc["all", "p_value"] == pytest.approx(1.0)
    assert table.loc["random", "p_value"] == pytest.approx(0.625)  # exact binomial, 3 of 4
    with pytest.raises(ValueError, match="position_balance got no records"):
        position_balance([])


def test_style_differences_absolute_and_relative() -> None:
    from persrm_lib.data.stylometry import SCALAR_FEATURES

    j = list(SCALAR_FEATURES).index("comma_rate")
    records = [pair(0, "a, b, c, d", "a b c d", "b", exemplar="w, x, y, z")]
    absolute = style_differences(records)
    relative = style_differences(records, relative_to_exemplars=True)
    assert absolute.shape == (1, len(SCALAR_FEATURES))
    assert absolute[0, j] == pytest.approx(75.0)  # chosen 3 commas / 4 words, rejected none
    assert relative[0, j] == pytest.approx(0.0 - 75.0)  # chosen matches the exemplar exactly


def test_separability_auc_detects_a_leak_and_chance() -> None:
    rng = np.random.default_rng(0)
    leak = rng.normal(size=(40, 5))
    leak[:, 2] = np.abs(leak[:, 2]) + 1.0  # chosen always has more of feature 2
    assert separability_auc(leak) == pytest.approx(1.0)
    noise = rng.normal(size=(200, 5))
    assert 0.35 < separability_auc(noise) < 0.65
    # the same input gives the same AUC
    assert separability_auc(noise) == separability_auc(noise)


@pytest.mark.parametrize(
    ("n_pairs", "n_splits", "message"),
    [
        # fewer pairs than folds
        (3, 5, "needs at least 5 pairs \\(one per fold\\), got 3"),
        # one fold is no cross-validation
        (10, 1, "needs n_splits >= 2, got 1"),
    ],
)
def test_separability_auc_bad_input(n_pairs: int, n_splits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        separability_auc(np.ones((n_pairs, 2)), n_splits=n_splits)


# ------------------------------------------------------------------------------------------
# Run-folder files and the audit summary
# ------------------------------------------------------------------------------------------


def full_trace(i: int, label: str, completion: str, negative_kind: str = "random") -> dict[str, Any]:
    chosen = "We hold, we keep; we stay. " * (1 + i % 3)
    rejected = "hey!! what now?? " * (1 + (i + 1) % 3)
    record = pair(i, chosen, rejected, label, negative_kind, exemplar="We hold, we keep; we go.")
    record.update(teacher="t", positive_kind="intra_author", completion=completion)
    return record


def test_check_against_pairs() -> None:
    traces = [full_trace(i, "a", GOOD_A) for i in range(3)]
    pairs = [{k: v for k, v in t.items() if k not in ("teacher", "completion")} for t in traces]
    extra = {**pairs[0], "id": "p9"}
    # every pair traced; an untraced pair is reported
    assert check_against_pairs(traces, pairs) == []
    assert check_against_pairs(traces, [*pairs, extra]) == ["p9"]
    # a trace of another pair set
    with pytest.raises(ValueError, match="trace 'p2' has no pair in the pair file"):
        check_against_pairs(traces, pairs[:2])
    # a trace whose label differs from its pair's
    with pytest.raises(ValueError, match="trace 'p1' disagrees with its pair on 'label'"):
        check_against_pairs(traces, [pairs[0], {**pairs[1], "label": "b"}, pairs[2]])


def test_write_faithful(tmp_path: Path) -> None:
    result = faithfulness_filter([full_trace(0, "a", GOOD_A), full_trace(1, "b", GOOD_A), full_trace(2, "b", GOOD_B)])
    path = write_faithful(result, tmp_path / "data" / "traces_faithful.jsonl")
    assert [r["id"] for r in read_jsonl(path)] == ["p0", "p2"]
    assert read_traces(path, written_by="02_filter_audit") == result.kept
    assert all(r["faithful"] is True for r in read_jsonl(path))
    nothing = faithfulness_filter([full_trace(0, "b", GOOD_A)])
    with pytest.raises(ValueError, match="no trace survived the faithfulness filter \\(0 of 1"):
        write_faithful(nothing, tmp_path / "empty.jsonl")
    assert not (tmp_path / "empty.jsonl").exists()


def test_faithfulness_by_and_audit_summary() -> None:
    traces = [
        full_trace(i, "a" if i % 2 else "b", GOOD_A if i % 2 else GOOD_B, "random" if i < 6 else "same_era")
        for i in range(10)
    ]
    traces[7]["completion"] = TIE  # label a, tie: unfaithful
    result = faithfulness_filter(traces)
    by_kind = faithfulness_by(result, "negative_kind").set_index("negative_kind")
    assert by_kind.loc["random", ["n", "kept"]].tolist() == [6, 6]
    assert by_kind.loc["same_era", ["n", "kept"]].tolist() == [4, 3]
    metrics = audit_summary(result, n_splits=3)
    assert (metrics["n_traces"], metrics["n_kept"], metrics["n_unfaithful"], metrics["n_unparsed"]) == (10, 9, 1, 0)
    assert metrics["n_uncited"] == 0  # the evidence check's own outcome (no pair carries evidence here)
    assert metrics["kept_fraction"] == pytest.approx(0.9)
    assert metrics["kept_fraction_same_era"] == pytest.approx(0.75)
    assert metrics["kept_share_label_a"] == pytest.approx(4 / 9)  # kept: labels a at 1, 3, 5, 9
    assert metrics["kept_chosen_longer_share"] == chosen_longer_share(result.kept)
    lengths = length_table(result.kept)
    assert metrics["kept_mean_words_chosen"] == pytest.approx(lengths[lengths.role == "chosen"]["words"].mean())
    assert metrics["all_share_label_a"] == pytest.approx(0.5)
    assert 0.0 <= metrics["separability_auc_absolute"] <= 1.0
    assert all(isinstance(v, int | float) for v in metrics.values())


def test_audit_summary_with_too_few_kept_pairs() -> None:
    result = faithfulness_filter([full_trace(0, "a", GOOD_A), full_trace(1, "a", GOOD_B)])
    metrics = audit_summary(result)
    assert (metrics["n_kept"], metrics["all_share_label_a"], metrics["kept_share_label_a"]) == (1, 1.0, 1.0)
    # one kept pair cannot be cross-validated; two traces can (two folds)
    assert metrics["separability_auc_absolute"] is None and metrics["separability_auc_relative"] is None
    assert metrics["all_separability_auc_absolute"] == separability_auc(style_differences(result.traces), 2)
    nothing = audit_summary(faithfulness_filter([full_trace(0, "b", GOOD_A)]))
    assert nothing["n_kept"] == 0 and nothing["kept_share_label_a"] is None


# --- evidence: a trace must cite only numbers of its pair's table ---------------------------------

EVIDENCE = {
    "rows": [
        {"criterion": "type-token ratio", "exemplars": "0.681", "a": "0.825", "b": "0.703", "better": "closer"},
        {"criterion": "character n-grams", "exemplars": "-", "a": "0.11", "b": "0.16", "better": "higher"},
    ],
    "n_exemplars": 1,
}


def evidence_trace(i: int, evaluation: str, scores: tuple[float, float], label: str = "b") -> dict[str, Any]:
    return {**trace(i, render_output("ttr; n-grams", evaluation, scores), label), "evidence": EVIDENCE}


def test_the_filter_rejects_a_faithful_trace_that_cites_a_number_not_in_its_table() -> None:
    traces = [
        evidence_trace(0, "type-token ratio: author 0.681, A 0.825, B 0.703; B.\nB is closer.", (3, 7)),  # kept
        evidence_trace(1, "type-token ratio: A 0.83, B 0.70; B.", (3, 7)),  # rounded: uncited
        evidence_trace(
            2, "B is closer on 2 of 2 criteria, A on 0 of 2.\n1. n-grams: A 0.11, B 0.16.", (3, 7)
        ),  # counts
        evidence_trace(3, "B wins with 7 of 10 points.", (3, 7)),  # 10 is more than the table's 2 rows: uncited
        evidence_trace(4, "A 0.9, B 0.1; A.", (7, 3)),  # wrong scores: unfaithful first, uncited not counted
        evidence_trace(5, "A 0.9", (7, 3)) | {"completion": "no format"},  # unparsed
        trace(6, GOOD_A, "a"),  # no evidence: the paper's filter only
    ]
    result = faithfulness_filter(traces)
    assert [r["id"] for r in result.kept] == ["p0", "p2", "p6"]
    assert [r.get("uncited") for r in result.traces] == [
        [],
        ["0.83", "0.70"],
        [],
        ["7", "10"],
        ["0.9", "0.1"],
        [],
        None,
    ]
    assert result.outcomes == {"faithful": 3, "unfaithful": 1, "uncited": 2, "unparsed": 1}
    assert result.n_uncited == 2
    table = result.by_strategy.set_index(["teacher", "negative_kind"])
    assert table.loc[("t", "random"), ["n", "kept", "unfaithful", "uncited", "unparsed"]].tolist() == [7, 3, 1, 2, 1]


def test_the_filter_names_a_pair_whose_evidence_is_malformed() -> None:
    bad = evidence_trace(0, "A 0.1", (3, 7)) | {"evidence": {"rows": [{"criterion": "x"}]}}
    with pytest.raises(ValueError, match=r"^pair 'p0': evidence row 0 lacks text field\(s\) exemplars, a, b, better$"):
        faithfulness_filter([bad])
