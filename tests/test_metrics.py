"""Metrics: accuracy (ties wrong), format compliance, order-consistent accuracy, A-preference, position
consistency, reasoning agreement (eval side vs scores), too-long pairs left out, seeded bootstrap, tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import stage_rows

from persrm_lib.evaluate import metrics


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (label, preferred, format_ok, swapped_preferred, swapped_format_ok, benchmark, n_exemplars)."""
    columns = ["label", "preferred", "format_ok", "swapped_preferred", "swapped_format_ok", "benchmark", "n_exemplars"]
    return pd.DataFrame(rows, columns=columns).astype(object)


ROWS = [
    ("a", "a", True, "b", True, "sotu", 1),  # correct, consistent
    ("b", "b", True, "b", True, "sotu", 1),  # correct, but the swapped order picks the other text
    ("a", None, True, None, True, "sotu", 3),  # a tie: wrong, and inconsistent
    ("b", None, False, "a", True, "aaac", 3),  # a format violation: wrong; the swap parsed
    ("a", "b", True, "a", True, "aaac", 1),  # wrong, but consistently wrong
]


def test_correct_counts_ties_and_violations_as_wrong() -> None:
    assert metrics.correct(frame(ROWS)).tolist() == [True, True, False, False, False]
    assert metrics.accuracy(frame(ROWS)) == pytest.approx(0.4)


def test_format_compliance_counts_both_orders() -> None:
    # 4 of 5 originals parse, 5 of 5 swapped verdicts parse
    assert metrics.format_compliance(frame(ROWS)) == pytest.approx(9 / 10)
    without_swap = frame(ROWS).drop(columns=["swapped_preferred", "swapped_format_ok"])
    assert metrics.format_compliance(without_swap) == pytest.approx(4 / 5)


def test_position_consistency() -> None:
    assert metrics.consistent(frame(ROWS)).tolist() == [True, False, False, False, True]
    assert metrics.position_consistency(frame(ROWS)) == pytest.approx(0.4)


def test_position_consistency_leaves_out_unswapped_pairs() -> None:
    rows = [("a", "a", True, None, None, "x", 1), ("a", "a", True, "b", True, "x", 1)]
    assert metrics.consistent(frame(rows)).tolist() == [True]
    no_swap = frame(rows[:1])
    assert np.isnan(metrics.position_consistency(no_swap))


def test_a_preference_counts_parsed_verdicts_of_both_orders() -> None:
    # parsed: originals a, b, tie, b (the 4th is a violation); swapped b, b, tie, a, a -> 3 of 9 prefer A
    assert metrics.a_preference(frame(ROWS)) == pytest.approx(3 / 9)
    only_original = frame(ROWS).drop(columns=["swapped_preferred", "swapped_format_ok"])
    assert metrics.a_preference(only_original) == pytest.approx(1 / 4)


def test_order_consistent_accuracy_needs_both_orders_right() -> None:
    # only the first pair is right in both orders; the second is right once (as written)
    assert metrics.order_consistent_accuracy(frame(ROWS)) == pytest.approx(1 / 5)
    only_original = frame(ROWS).drop(columns=["swapped_preferred", "swapped_format_ok"])
    assert np.isnan(metrics.order_consistent_accuracy(only_original))


def new_rows(rows: list[tuple]) -> pd.DataFrame:
    """rows: (label, pair preferred, too_long, original preferred, original eval side, swapped preferred,
    swapped eval side), every order parsed unless too long."""
    out = []
    for label, pair, too_long, orig, orig_side, swapped, swapped_side in rows:
        out.append(
            {
                "label": label,
                "preferred": pair,
                "format_ok": not too_long,
                "too_long": too_long,
                "original_preferred": orig,
                "original_format_ok": not too_long,
                "original_eval_side": orig_side,
                "swapped_preferred": swapped,
                "swapped_format_ok": not too_long,
                "swapped_eval_side": swapped_side,
            }
        )
    return pd.DataFrame(out).astype(object)


NEW_ROWS = [
    ("a", "a", False, "a", "a", "b", "b"),  # right in both orders; both evals agree with the scores
    ("a", "a", False, "a", "a", "a", "b"),  # right as written only; the swapped eval says B, its scores A
    ("b", None, False, "a", None, "a", None),  # always A: averaged to a tie; no eval names a side
    ("b", None, True, None, None, None, None),  # too long: left out of every rate
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("n", 3),  # the too-long pair is not judged
        ("too_long", 1),  # but counted
        ("accuracy", 2 / 3),  # the pair verdicts a, a, tie
        ("order_consistent_accuracy", 1 / 3),  # only the first pair is right in both orders
        ("a_preference", 5 / 6),  # per-order verdicts a, b, a, a, a, a
        ("consistency", 1 / 3),  # the same text in both orders: the first pair only
        ("format", 1.0),  # every judged order parsed
        ("reasoning_agreement", 3 / 4),  # four evals name a side; the second pair's swapped one disagrees
        ("n_reasoned", 4),
    ],
)
def test_metric_row_of_both_orders_with_a_too_long_pair(name: str, expected: float) -> None:
    row = metrics.metric_row(new_rows(NEW_ROWS), n_bootstrap=20)
    assert tuple(row) == metrics.METRIC_COLUMNS
    assert row[name] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "side"),
    [
        ("rhythm: author 12.1, A 11.9, B 20.3; A.\nA is closer to the author.", "a"),  # compact teacher form
        (
            "- rhythm: ...; B is closer.\nA is closer on 1 of 5 criteria, B on 4. Response B is closer to the "
            "exemplars' style overall.",
            "b",
        ),  # full form: the overall verdict, not the per-criterion lines
        ("A is closer to the author. On reflection, B is closer to the author.", "b"),  # the last statement counts
        ("rhythm: A 1, B 2; A.\nfunction words: A 3, B 4; B.", None),  # comparisons only: no side stated
        ("A is closer on 3 of 5 criteria, B on 2.", None),  # a count is not a decision
        ("Both are equally close to the author.", None),  # a tie names no side
        ("The two responses are equally close to the exemplars' style.", None),  # full-form tie
        (None, None),  # no eval at all
    ],
)
def test_eval_side(text, side) -> None:
    assert metrics.eval_side(text) == side


@pytest.mark.parametrize("compact", [True, False])
def test_reasoning_agreement_is_total_on_real_teacher_traces(compact: bool) -> None:
    from real_pairs import real_pairs

    from persrm_lib.core.verdict import read_verdict
    from persrm_lib.teachers.stylometric import StylometricTeacher
    from persrm_lib.teachers.swap import swap_completion

    pairs = real_pairs()  # 12 State of the Union pairs
    teacher = StylometricTeacher(compact=compact)
    teacher.prepare(pairs)
    traces = [teacher.judge(p) for p in pairs]
    traces += [swap_completion(t) for t in traces]  # the swapped copies SFT trains on
    decided = sum(read_verdict(t).preferred is not None for t in traces)
    assert decided == 24  # no tie among these pairs, in either order
    assert metrics.reasoning_agreement(traces) == (24, 24)


def test_reasoning_agreement_counts_contradicting_scores() -> None:
    from persrm_lib.core.output_format import render_output

    completions = [
        render_output("c", "A is closer to the author.", (7, 3)),  # agrees
        render_output("c", "A is closer to the author.", (3, 7)),  # contradicts its own eval
        render_output("c", "A is closer to the author.", (5, 5)),  # a tie contradicts it too
        render_output("c", "rhythm: A 1, B 2; A.", (7, 3)),  # no side stated: left out
        "<criteria>c</criteria><eval>A is closer to the author.</eval>",  # no scores: a violation, left out
    ]
    assert metrics.reasoning_agreement(completions) == (1, 3)


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    values = np.array([1.0] * 70 + [0.0] * 30)
    first = metrics.bootstrap_ci(values, seed=3)
    assert first == metrics.bootstrap_ci(values, seed=3)
    spread = np.sqrt(np.arange(100.0))  # continuous values: another seed moves the interval
    assert metrics.bootstrap_ci(spread, seed=3) != metrics.bootstrap_ci(spread, seed=4)
    low, high = first
    # normal approximation: 0.7 +- 1.96 * sqrt(0.21 / 100) = [0.61, 0.79]
    assert low == pytest.approx(0.61, abs=0.03)
    assert high == pytest.approx(0.79, abs=0.03)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], (None, None)),  # no data: NaN interval
        ([0.0, 0.0, 0.0], (0.0, 0.0)),  # no variance: a point
    ],
)
def test_bootstrap_edge_cases(values, expected) -> None:
    low, high = metrics.bootstrap_ci(values)
    if expected[0] is None:
        assert np.isnan(low) and np.isnan(high)
    else:
        assert (low, high) == expected


def test_summarize_groups_sorted_with_counts() -> None:
    table = metrics.summarize(frame(ROWS), by="benchmark", n_bootstrap=200)
    assert table["benchmark"].tolist() == ["aaac", "sotu"]
    assert table["n"].tolist() == [2, 3]
    assert table["accuracy"].tolist() == pytest.approx([0.0, 2 / 3])
    assert table["format"].tolist() == pytest.approx([3 / 4, 1.0])
    assert table["consistency"].tolist() == pytest.approx([0.5, 1 / 3])
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


def test_summarize_missing_values_group_as_unknown() -> None:
    rows = frame(ROWS)
    rows["genre"] = ["speech", None, "speech", float("nan"), "chat"]
    table = metrics.summarize(rows, by="genre", n_bootstrap=50)
    assert table["genre"].tolist() == ["chat", "speech", "unknown"]
    assert table["n"].tolist() == [1, 2, 2]


def test_summarize_unknown_column() -> None:
    with pytest.raises(KeyError, match="results have no column\\(s\\) genre to group by"):
        metrics.summarize(frame(ROWS), by="genre")


def test_breakdowns_cover_the_columns_present() -> None:
    rows = frame(ROWS)
    rows["judge"] = "j"
    tables = metrics.breakdowns(rows, extra=("judge",), n_bootstrap=50)
    assert sorted(tables) == ["benchmark", "n_exemplars", "overall"]  # no negative_kind, positive_kind, genre here
    assert tables["n_exemplars"][["judge", "n_exemplars", "n"]].values.tolist() == [["j", 1, 3], ["j", 3, 2]]
    assert tables["overall"]["accuracy"].tolist() == pytest.approx([0.4])


def test_accuracy_table_is_paper_style() -> None:
    rows = pd.concat([frame(ROWS).assign(judge="second"), frame(ROWS[:2]).assign(judge="first")], ignore_index=True)
    table = metrics.accuracy_table(rows)
    assert table.index.tolist() == ["second", "first"]  # evaluation order, not alphabetical
    assert table.columns.tolist() == ["aaac", "sotu"]
    assert table.loc["first", "sotu"] == "100.0 [100.0, 100.0]"
    assert table.loc["second", "aaac"] == "0.0 [0.0, 0.0]"
    assert pd.isna(table.loc["first", "aaac"])  # not evaluated there


def test_to_markdown_writes_a_pipe_table_with_dashes_for_gaps() -> None:
    from persrm_lib.evaluate.tables import to_markdown

    table = pd.DataFrame({"sotu": ["60.0 [40.0, 80.0]", None]}, index=pd.Index(["char-ngram", "rm-sft"], name="judge"))
    assert to_markdown(table).splitlines() == [
        "| judge | sotu |",
        "|---|---|",
        "| char-ngram | 60.0 [40.0, 80.0] |",
        "| rm-sft | – |",
    ]


# ---- paired comparison and the reference run's goals ------------------------------------------


def judged(judge: str, hits: dict[int, bool], kinds: dict[int, str], swapped_ok: bool = True) -> list[dict]:
    """Rows of one judge: pair id -> whether it picked the labelled response ("a")."""
    return [
        {
            "judge": judge,
            "id": i,
            "n_exemplars": 3,
            "label": "a",
            "preferred": "a" if hit else "b",
            "format_ok": True,
            "swapped_preferred": ("b" if hit else "a") if swapped_ok else "a" if hit else "b",
            "swapped_format_ok": True,
            "negative_kind": kinds[i],
        }
        for i, hit in hits.items()
    ]


KINDS = {i: ("random" if i % 2 else "same-era") for i in range(40)}


def test_paired_comparison_uses_only_the_pairs_the_model_judged() -> None:
    # the model judged pairs 0-9 only, all right; the baseline is right on 0-4 and on all of 10-39
    model = judged("rm-rft", {i: True for i in range(10)}, KINDS)
    base = judged("char-ngram", {i: i < 5 or i >= 10 for i in range(40)}, KINDS)
    table = metrics.paired_comparison(pd.DataFrame(model + base), "rm-rft", ["char-ngram", "absent"], seed=3)
    overall = table[table["group"] == "all"].iloc[0]
    assert (overall["n"], overall["model_accuracy"], overall["baseline_accuracy"]) == (10, 1.0, 0.5)
    assert overall["difference"] == pytest.approx(0.5)
    assert 0 < overall["diff_low"] <= 0.5 <= overall["diff_high"] <= 1.0
    assert set(table["baseline"]) == {"char-ngram"}  # an absent baseline is left out, not zero
    assert sorted(table["group"]) == ["all", "random", "same-era"]
    assert table.set_index("group")["n"].to_dict() == {"all": 10, "random": 5, "same-era": 5}


def test_paired_comparison_interval_is_seeded_and_missing_columns_are_named() -> None:
    rows = pd.DataFrame(
        judged("m", {i: i % 3 > 0 for i in range(30)}, KINDS) + judged("b", {i: i % 2 > 0 for i in range(30)}, KINDS)
    )
    first = metrics.paired_comparison(rows, "m", ["b"], seed=7)
    assert first.equals(metrics.paired_comparison(rows, "m", ["b"], seed=7))
    assert metrics.paired_comparison(rows, "nobody", ["b"]).empty
    with pytest.raises(KeyError, match="negative_kind"):
        metrics.paired_comparison(rows.drop(columns=["negative_kind"]), "m", ["b"])


def test_pair_hits_order_consistent_needs_both_orders_and_rejects_unknown_measures() -> None:
    records = stage_rows("m", {0: ("a", "b"), 1: ("a", "a"), 2: ("b", "b"), 3: ("a", "b")})
    records[3] = {**records[3], "swapped_preferred": None, "swapped_format_ok": None}
    rows = pd.DataFrame(records)
    assert metrics.pair_hits(rows, "order_consistent").tolist()[:3] == [1.0, 0.0, 0.0]
    assert np.isnan(metrics.pair_hits(rows, "order_consistent").iloc[3])  # one order only: undefined
    assert metrics.pair_hits(rows, "accuracy").tolist() == [1.0, 0.0, 0.0, 1.0]
    assert metrics.order_consistent_accuracy(rows) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="unknown measure 'recall'"):
        metrics.pair_hits(rows, "recall")


def test_paired_order_consistent_comparison_leaves_out_pairs_judged_in_one_order() -> None:
    sft = stage_rows("rm-sft", {i: ("a", "a") for i in range(6)})  # always A: never right in both orders
    rft = stage_rows("rm-rft", {i: ("a", "b") for i in range(6)})  # right in both orders
    rft[5] = {**rft[5], "swapped_preferred": None, "swapped_format_ok": None}
    table = metrics.paired_comparison(pd.DataFrame(sft + rft), "rm-rft", ["rm-sft"], None, measure="order_consistent")
    row = table.iloc[0]
    assert (row["group"], row["n"], row["model_accuracy"], row["baseline_accuracy"]) == ("all", 5, 1.0, 0.0)
    assert row["diff_low"] == row["difference"] == 1.0


def test_reference_goals_met_by_an_order_robust_model_that_improves_stage_by_stage() -> None:
    n = 20
    base = stage_rows("rm-base", {i: ("a", "a") for i in range(n)})  # always A
    sft = stage_rows("rm-sft", {i: ("a", "b") if i < 10 else ("b", "a") for i in range(n)})  # right on half
    rft = stage_rows("rm-rft", {i: ("a", "b") if i < 19 else ("b", "a") for i in range(n)})  # right on 19
    ngram = judged("char-ngram", {i: i < 12 for i in range(n)}, KINDS)
    evidence = judged("evidence-lr", {i: i < 10 for i in range(n)}, KINDS)
    for row in ngram + evidence:
        row["benchmark"] = "sotu"
    goals = metrics.reference_goals(pd.DataFrame(base + sft + rft + ngram + evidence), n_bootstrap=500)
    assert list(goals.columns) == list(metrics.GOAL_COLUMNS)
    table = goals.set_index("goal")
    assert table.loc["format compliance, rm-rft", "met"] and table.loc["A-preference, rm-sft", "value"] == 0.5
    sft_step = table.loc["order-consistent accuracy: rm-sft - rm-base (n=20; 0.500 vs 0.000)"]
    assert (sft_step["value"], sft_step["target"], sft_step["met"]) == (0.5, "> 0", True)
    rft_step = table.loc["order-consistent accuracy: rm-rft - rm-sft (n=20; 0.950 vs 0.500)"]
    assert rft_step["target"] == "interval > 0" and rft_step["met"] and rft_step["decisive"]
    assert table.loc["accuracy on sotu: rm-rft - char-ngram (n=20; 0.950 vs 0.600)", "met"]
    assert table.loc["accuracy: rm-rft - evidence-lr (n=20; 0.950 vs 0.500)", "met"]
    assert goals["met"].all()


def test_reference_goals_fail_an_always_a_model_and_what_was_not_measured() -> None:
    always_a = {i: ("a", "a") for i in range(10)}
    rows = pd.DataFrame(
        stage_rows("rm-base", always_a) + stage_rows("rm-sft", always_a) + stage_rows("rm-rft", always_a)
    )
    table = metrics.reference_goals(rows, n_bootstrap=200).set_index("goal")
    assert table.loc["A-preference, rm-rft", "value"] == 1.0 and not table.loc["A-preference, rm-rft", "met"]
    rft_step = table.loc["order-consistent accuracy: rm-rft - rm-sft (n=10; 0.000 vs 0.000)"]
    assert rft_step["value"] == 0.0 and not rft_step["met"]
    # no baseline ran: each comparison says so and is not met
    missing = table.loc["accuracy on sotu: rm-rft - char-ngram (not measured: no pair judged by both)"]
    assert np.isnan(missing["value"]) and not missing["met"]
    assert not table.loc["accuracy: rm-rft - evidence-lr (not measured: no pair judged by both)", "met"]
    # a trained stage that did not run is reported, not met; the difference falls back to the stages that ran
    partial = metrics.reference_goals(rows[rows["judge"] != "rm-rft"], n_bootstrap=200).set_index("goal")
    assert not partial.loc["format compliance, rm-rft (not run)", "met"]
    assert "accuracy: rm-sft - evidence-lr (not measured: no pair judged by both)" in partial.index


def test_persona_goals_the_issue_targets_met_and_missed() -> None:
    n = 20
    base = stage_rows("rm-base", {i: ("a", "a") for i in range(n)})  # always A: 0 order-consistent
    sft = stage_rows("rm-sft", {i: ("a", "b") if i < 14 else ("b", "a") for i in range(n)})  # right on 14
    rft = stage_rows("rm-rft", {i: ("a", "b") if i < 19 else ("b", "a") for i in range(n)})  # right on 19
    ngram = judged("char-ngram", {i: i < 12 for i in range(n)}, KINDS)
    rows = pd.DataFrame(base + sft + rft + ngram)
    goals = metrics.persona_goals(rows, {"rm-rft": 0.85, "rm-sft": 0.5}, pairwise=True, n_bootstrap=500)
    assert list(goals.columns) == list(metrics.GOAL_COLUMNS)
    table = goals.set_index("goal")
    sft_step = table.loc["order-consistent accuracy: rm-sft - rm-base (n=20; 0.700 vs 0.000)"]
    assert (sft_step["target"], sft_step["met"], sft_step["decisive"]) == ("interval > 0", True, True)
    assert table.loc["order-consistent accuracy: rm-rft - rm-sft (n=20; 0.950 vs 0.700)", "target"] == ">= 0"
    assert table.loc["order-consistent accuracy, rm-rft", "value"] == 0.95
    assert table.loc["accuracy: rm-rft - char-ngram (n=20; 0.950 vs 0.600)", "met"]
    assert table.loc["criteria recall, rm-rft", "value"] == 0.85
    assert table.loc["A-preference, rm-rft", "met"] and goals["met"].all()
    # the headline records each goal by its stable key (what the regression's learning gate reads)
    from persrm_lib.evaluate.suite import headline_metrics
    from persrm_lib.run.regression import LEARNING_GOAL

    headline = headline_metrics(rows.assign(n_exemplars=1), 1, goals, n_bootstrap=50)
    assert headline[LEARNING_GOAL] is True and headline["goal_met/criteria_recall_rm_rft"] is True
    assert sum(k.startswith("goal_met/") for k in headline) == len(goals) == headline["goals"]
    # pointwise stages have no position: no A-preference goal; a low recall or a missing one is not met
    pointwise = metrics.persona_goals(rows, {"rm-rft": 0.79}, pairwise=False, n_bootstrap=200).set_index("goal")
    assert not any(goal.startswith("A-preference") for goal in pointwise.index)
    assert not pointwise.loc["criteria recall, rm-rft", "met"]
    unmeasured = metrics.persona_goals(rows, {}, pairwise=False, n_bootstrap=200).set_index("goal")
    assert np.isnan(unmeasured.loc["criteria recall, rm-rft", "value"])
    assert not unmeasured.loc["criteria recall, rm-rft", "met"]
    # a stage short of 0.90 fails the bar even when it beats the stages before it
    weaker = metrics.persona_goals(
        pd.DataFrame(base + sft + ngram), {"rm-sft": 0.9}, pairwise=False, n_bootstrap=200
    ).set_index("goal")
    assert not weaker.loc["order-consistent accuracy, rm-sft", "met"]
    assert not weaker.loc["format compliance, rm-rft (not run)", "met"]


def test_order_robustness_plot_draws_every_rate_and_notes_an_empty_table() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from persrm_lib.evaluate.tables import ORDER_ROBUSTNESS_COLUMNS, plot_order_robustness

    rows = pd.DataFrame(stage_rows("rm-sft", {i: ("a", "a") for i in range(4)}))
    summary = metrics.summarize(rows, "judge", n_bootstrap=50)
    fig, ax = plt.subplots()
    plot_order_robustness(summary, ["rm-base", "rm-sft"], ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rm-sft"]  # absent judges are left out
    heights = [round(b.get_height(), 2) for b in ax.patches if b.get_width() < 0.5]
    assert len(heights) == len(ORDER_ROBUSTNESS_COLUMNS)
    assert heights[:4] == [1.0, 0.0, 0.0, 1.0]  # format, accuracy, order-consistent, A-preference
    fig2, ax2 = plt.subplots()
    plot_order_robustness(pd.DataFrame(), ["rm-sft"], ax2)
    assert ax2.texts[0].get_text() == "no generative judge ran"
    plt.close(fig)
    plt.close(fig2)
