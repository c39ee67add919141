"""The persona benchmark: operators, detectors, splits, pairs, the persona teacher."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from persrm_lib.core.output_format import parse_output
from persrm_lib.core.verdict import read_verdict
from persrm_lib.data import personas as P
from persrm_lib.data.leaks import label_shortcut_report
from persrm_lib.data.pairs import swap_pair
from persrm_lib.teachers import persona as T

TEXT = "And we will act, and it is time. We do not wait, for peace."


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("lowercase", "and we will act, and it is time. we do not wait, for peace."),  # every letter lowered
        ("contractions", "And we'll act, and it's time. We don't wait, for peace."),  # full forms contracted
        ("ampersand", "And we will act, & it is time. We do not wait, for peace."),  # only the lower-case word
        ("em_dash", "And we will act \u2014 and it is time. We do not wait \u2014 for peace."),  # ', ' -> ' — '
        ("no_commas", "And we will act and it is time. We do not wait for peace."),  # every comma removed
        ("exclamation", "And we will act, and it is time! We do not wait, for peace!"),  # sentence-final only
        ("ellipsis", "And we will act, and it is time... We do not wait, for peace..."),
        ("title_case", "And We Will Act, And It Is Time. We Do Not Wait, For Peace."),
    ],
)
def test_operator_definition(operator, expected):
    assert P.OPERATORS[operator].rewrite(TEXT) == expected


def test_operators_compose_in_catalogue_order():
    # lowercase first, so the sentence-initial "And" becomes "&" too
    assert (
        P.apply_persona(("ampersand", "lowercase"), TEXT) == "& we will act, & it is time. we do not wait, for peace."
    )
    assert P.shows(P.apply_persona(("ampersand", "lowercase"), TEXT)) == {"ampersand", "lowercase"}


@pytest.mark.parametrize(
    ("persona", "message"),
    [
        (["exclamation", "ellipsis"], "clash"),  # both rewrite sentence ends
        (["em_dash", "no_commas"], "clash"),  # both rewrite commas
        (["lowercase", "title_case"], "clash"),  # both rewrite casing
        (["shouting"], "unknown style operator(s) ['shouting']"),
        (["lowercase", "lowercase"], "repeated"),
    ],
)
def test_check_persona_refuses(persona, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        P.check_persona(persona, "test persona")


@pytest.fixture(scope="module")
def passages():
    docs = P.persona_base_passages(20, max_per_source=300, seed=0)
    return docs


def test_base_passages_split_by_work(passages):
    works = passages.groupby("work")["split"].nunique()
    assert int(works.max()) == 1  # a work never spans two splits
    assert set(passages["split"]) == {"train", "validation", "test"}
    assert set(passages["source"]) == {"sotu", "aaac", "literature"}
    assert passages["text"].str.split().str.len().max() <= 30  # 1.5 x 20 words


@pytest.mark.parametrize("operator", [op.name for op in P.CATALOGUE])
def test_each_operator_is_visible_where_it_is_used(passages, operator):
    texts = passages["text"].tolist()[:400]
    used = [t for t in texts if P.usable((operator,), t)]
    assert len(used) >= 40, f"{operator} usable on only {len(used)} of 400 passages"
    for text in used:
        rewritten = P.OPERATORS[operator].rewrite(text)
        assert rewritten != text
        assert P.OPERATORS[operator].detect(rewritten) is True
        assert P.OPERATORS[operator].detect(text) is False
        assert P.shows(rewritten) == {operator}


def test_unusable_passages_are_refused():
    assert P.usable(("no_commas",), "No comma here at all.") is False  # nothing to remove: not visible
    assert P.usable(("lowercase",), "already lower, it is.") is False
    assert P.usable(("exclamation",), "No sentence end here, and none") is False


def test_persona_splits_hold_out_an_operator_and_combinations():
    splits = P.persona_splits("ellipsis", 2, 0.3, seed=0)
    train, test = set(splits["train"].targets), set(splits["test"].targets)
    assert not train & test  # test personas are unseen
    assert all("ellipsis" not in p for p in train) and all("ellipsis" not in p for p in splits["train"].negatives)
    assert any("ellipsis" in p for p in test)
    singles = {p for p in train if len(p) == 1}
    assert len(singles) == len(P.CATALOGUE) - 1  # every taught operator alone, once
    assert splits == P.persona_splits("ellipsis", 2, 0.3, seed=0)


def test_persona_splits_refuse_bad_settings():
    with pytest.raises(ValueError, match=r"held_out_operator: unknown style operator\(s\) \['caps'\]"):
        P.persona_splits("caps", 2, 0.3, 0)
    with pytest.raises(ValueError, match="max_size must be in 1..4, got 0"):
        P.persona_splits("ellipsis", 0, 0.3, 0)
    with pytest.raises(ValueError, match=r"test_share must be in \(0, 1\), got 1.0"):
        P.persona_splits("ellipsis", 2, 1.0, 0)


@pytest.fixture(scope="module")
def pairs(passages):
    from persrm_lib.data.synonyms import WordNetSynonyms

    split = P.persona_splits("ellipsis", 2, 0.3, 0)["test"]
    docs = passages[passages["split"] == "test"]
    return P.build_persona_pairs(
        docs, split, 120, 2, seed=3, query="Write.", synonyms=WordNetSynonyms(), split_name="test"
    )


def test_persona_pairs_are_right_by_construction(pairs):
    for pair in pairs:
        chosen = pair[f"response_{pair['label']}"]
        rejected = pair[f"response_{'b' if pair['label'] == 'a' else 'a'}"]
        assert all(P.shows(e) == set(pair["persona"]) for e in pair["exemplars"])
        assert P.shows(chosen) == set(pair["persona"])
        assert P.shows(rejected) == set(pair["rejected_persona"]) != set(pair["persona"])
        if pair["negative_kind"] == "adversarial":  # one feature off, on the chosen passage itself
            assert len(set(pair["persona"]) ^ set(pair["rejected_persona"])) == 1
            assert pair["provenance"]["chosen_doc_id"] == pair["provenance"]["rejected_doc_id"]
        else:
            assert pair["provenance"]["chosen_doc_id"] != pair["provenance"]["rejected_doc_id"]
        if pair["positive_kind"] == "lexical-perturbation":
            assert 3 <= len(pair["provenance"]["swaps"]) <= 4


def test_persona_pairs_do_not_leak(pairs):
    report = label_shortcut_report(pairs)
    assert report["position_a"] == 0.5  # labels alternate within each strategy
    assert report["strategy_majority"] == 0.5
    assert abs(report["query_overlap"] - 0.5) <= 0.05  # one fixed query: only chance overlap
    for key in ("longer_wins_chars", "longer_wins_words", "closer_length_to_exemplars"):
        assert 0.35 <= report[key] <= 0.65, (key, report[key])
    kinds = Counter((p["positive_kind"], p["negative_kind"]) for p in pairs)
    assert set(kinds.values()) == {20}  # every strategy an equal share


def test_operator_count_gives_nothing_away(pairs):
    # retrieved and random negatives: a persona with as many operators as the chosen one
    others = [p for p in pairs if p["negative_kind"] != "adversarial"]
    assert all(len(p["rejected_persona"]) == len(p["persona"]) for p in others)
    # adversarial negatives: one operator removed in exactly half, one added in the other half
    adversarial = [p for p in pairs if p["negative_kind"] == "adversarial"]
    added = sum(len(p["rejected_persona"]) > len(p["persona"]) for p in adversarial)
    assert len(adversarial) == 40 and added == 20


def test_persona_pairs_are_deterministic(passages, pairs):
    from persrm_lib.data.synonyms import WordNetSynonyms

    split = P.persona_splits("ellipsis", 2, 0.3, 0)["test"]
    again = P.build_persona_pairs(
        passages[passages["split"] == "test"],
        split,
        120,
        2,
        seed=3,
        query="Write.",
        synonyms=WordNetSynonyms(),
        split_name="test",
    )
    assert json.dumps(again) == json.dumps(pairs)


def test_true_operators_follow_the_label_through_a_swap(pairs):
    pair = pairs[0]
    swapped = swap_pair(pair)
    for side in "ab":
        other = "b" if side == "a" else "a"
        assert P.true_operators(pair, side) == P.true_operators(swapped, other)
    with pytest.raises(ValueError, match="side must be 'a', 'b' or 'exemplars', got 'c'"):
        P.true_operators(pair, "c")


def test_persona_teacher_is_exact(pairs):
    for pair in pairs:
        trace = T.pairwise_trace(pair)
        parsed = parse_output(trace)
        assert parsed.ok and read_verdict(trace).preferred == pair["label"]
        assert T.read_criteria(parsed.criteria) == set(pair["persona"])
        checks = T.read_checks(parsed.evaluation)
        assert [c.shows for c in checks] == [P.true_operators(pair, "a"), P.true_operators(pair, "b")]


def test_pointwise_traces_straddle_the_midpoint(pairs):
    from persrm_lib.core.pointwise import pointwise_outcome

    for pair in pairs:
        for side, completion in zip("ab", T.pointwise_completions(pair), strict=True):
            assert pointwise_outcome(completion, pair["label"] == side) == 1


@pytest.mark.parametrize(
    ("persona_ops", "response_ops", "score"),
    [
        ((), (), 10.0),  # plain persona, plain response
        (("lowercase",), ("lowercase",), 10.0),
        (("lowercase",), (), 4.0),  # one missing
        (("lowercase",), ("lowercase", "ampersand"), 4.0),  # one extra
        (("lowercase", "em_dash"), ("ampersand",), 0.0),  # three off: floored at 0
    ],
)
def test_match_score(persona_ops, response_ops, score):
    check = T.PersonaCheck(
        frozenset(response_ops),
        frozenset(persona_ops) - frozenset(response_ops),
        frozenset(response_ops) - frozenset(persona_ops),
    )
    assert T.match_score(check) == score


def test_read_criteria_and_checks():
    assert T.read_criteria("lowercase, ampersand") == {"lowercase", "ampersand"}
    assert T.read_criteria("none") == frozenset()
    assert T.read_criteria("rhythm, tone") is None  # not operator names
    checks = T.read_checks(
        "A shows: lowercase. missing: none. extra: none.\nB shows: none. missing: lowercase. extra: none."
    )
    assert checks == [
        T.PersonaCheck(frozenset({"lowercase"}), frozenset(), frozenset()),
        T.PersonaCheck(frozenset(), frozenset({"lowercase"}), frozenset()),
    ]
    assert T.read_checks("shows: shouting. missing: none. extra: none.") == [None]


def test_pointwise_completions_refuse_other_pairs():
    pair = {"id": "sotu-1", "exemplars": ["E."], "response_a": "A.", "response_b": "B.", "label": "a"}
    with pytest.raises(ValueError, match="pair 'sotu-1' is not a persona pair"):
        T.pointwise_completions(pair)


def test_router_sends_persona_pairs_to_the_persona_teacher(pairs):
    class Fixed(T.Teacher):
        name = "fixed"

        def judge(self, pair):
            return "other teacher"

    router = T.PersonaRouter(Fixed())
    other = {"id": "x", "exemplars": ["E."], "response_a": "A.", "response_b": "B.", "label": "a"}
    results = dict(router.judge_each([pairs[0], other, pairs[1]]))
    assert results[1] == "other teacher"
    assert results[0] == T.pairwise_trace(pairs[0]) and results[2] == T.pairwise_trace(pairs[1])
    assert router.name == "fixed" and router.can_hint(pairs[0]) is False
    # each trace names the teacher that wrote it
    assert (router.trace_teacher(pairs[0]), router.trace_teacher(other)) == ("persona", "fixed")
    assert router.trace_teachers() == {"fixed", "persona"}


def test_router_traces_say_who_wrote_them_and_resume(pairs, tmp_path):
    from persrm_lib.core.jsonl import read_jsonl
    from persrm_lib.teachers.stylometric import StylometricTeacher
    from persrm_lib.teachers.traces import generate_traces, partial_path, read_traces

    other = {"id": "x", "query": "Write.", "exemplars": ["E."], "response_a": "A.", "response_b": "B.", "label": "a",
             "positive_kind": "intra_author", "negative_kind": "random"}  # fmt: skip
    mixed = [pairs[0], other, pairs[1]]
    out = tmp_path / "traces.jsonl"
    generate_traces(mixed, T.PersonaRouter(StylometricTeacher()), out)
    assert {t["id"]: t["teacher"] for t in read_traces(out)} == {
        pairs[0]["id"]: "persona", "x": "stylometric", pairs[1]["id"]: "persona"
    }  # fmt: skip
    # a file holding both names resumes with the router, and is refused by a teacher that wrote neither
    out.rename(partial_path(out))
    kept = read_jsonl(partial_path(out))[:2]
    partial_path(out).write_text("".join(json.dumps(r) + "\n" for r in kept))
    generate_traces(mixed, T.PersonaRouter(StylometricTeacher()), out)
    assert [t["teacher"] for t in read_traces(out)] == ["persona", "stylometric", "persona"]
    with pytest.raises(ValueError, match="holds traces by teacher 'persona', not 'stylometric'"):
        generate_traces(mixed, StylometricTeacher(), out)


def _results_for(pairs, completions, swapped=None, judge="rm-sft"):
    import pandas as pd

    return pd.DataFrame(
        {
            "judge": judge, "stage": "sft", "id": [p["id"] for p in pairs], "n_exemplars": 2,
            "completion": completions, "swapped_completion": swapped or [None] * len(pairs),
        }
    )  # fmt: skip


def test_reasoning_of_the_teacher_is_perfect(pairs):
    from persrm_lib.core.pointwise import join_completions
    from persrm_lib.evaluate import persona_reasoning as R

    by_id = {p["id"]: p for p in pairs}
    pairwise = _results_for(
        pairs, [T.pairwise_trace(p) for p in pairs], [T.pairwise_trace(swap_pair(p)) for p in pairs]
    )
    pointwise = _results_for(
        pairs, [join_completions(*T.pointwise_completions(p)) for p in pairs], judge="rm-pointwise"
    )
    table = R.reasoning_metrics(R.persona_reasoning(pd_concat([pairwise, pointwise]), by_id)).set_index("judge")
    assert table.loc["rm-sft", "n_completions"] == 2 * len(pairs)  # both orders
    assert table.loc["rm-pointwise", "n_completions"] == 2 * len(pairs)  # both responses
    for judge in ("rm-sft", "rm-pointwise"):
        for column in (
            "format",
            "criteria_precision",
            "criteria_recall",
            "criteria_exact",
            "check_agreement",
            "verdict_follows_checks",
        ):
            assert table.loc[judge, column] == 1.0, (judge, column)


def test_reasoning_rates_of_wrong_completions(pairs):
    from persrm_lib.evaluate import persona_reasoning as R

    pair = next(p for p in pairs if len(p["persona"]) == 2)
    first = pair["persona"][0]
    truth = set(pair["persona"])
    other = next(
        op.name for op in P.CATALOGUE if op.name not in truth and not any(c <= {first, op.name} for c in P.CLASHES)
    )
    # names one true operator and one wrong one; checks A and B swapped; scores follow the (wrong) checks
    a_ops, b_ops = P.true_operators(pair, "a"), P.true_operators(pair, "b")
    crit = frozenset({first, other})
    checks = [T.check_response(crit, pair["response_b"]), T.check_response(crit, pair["response_a"])]
    text = (
        f"<criteria>{first}, {other}</criteria><eval>A {checks[0].line()}\nB {checks[1].line()}</eval>"
        f"<scores>[{T.match_score(checks[0]):g}, {T.match_score(checks[1]):g}]</scores>"
    )
    rates = R.completion_reasoning(pair, text, ("a", "b"))
    assert rates["criteria_precision"] == 0.5 and rates["criteria_recall"] == 0.5 and rates["criteria_exact"] == 0.0
    assert rates["check_agreement"] == (float(b_ops == a_ops))  # each check describes the other response
    assert rates["verdict_follows_checks"] == 1.0
    free = R.completion_reasoning(
        pair, "<criteria>tone</criteria><eval>A is better</eval><scores>[7, 3]</scores>", ("a", "b")
    )
    assert free["criteria_precision"] != free["criteria_precision"]  # NaN: it names no operator
    assert {k: v for k, v in free.items() if k != "criteria_precision"} == {
        "format": 1.0, "criteria_recall": 0.0, "criteria_exact": 0.0, "check_agreement": 0.0, "verdict_follows_checks": 0.0
    }  # fmt: skip
    broken = R.completion_reasoning(pair, "no format", ("a",))
    assert broken["format"] == 0.0 and broken["criteria_recall"] == 0.0 and broken["verdict_follows_checks"] == 0.0


def test_rft_reasoning_reads_orders_and_sides(pairs):
    from persrm_lib.data.pairs import SWAPPED_SUFFIX
    from persrm_lib.evaluate import persona_reasoning as R

    by_id = {p["id"]: p for p in pairs[:2]}
    first, second = pairs[0], pairs[1]
    pointwise_a, _ = T.pointwise_completions(second)
    records = [
        {"step": 1, "pair_id": first["id"], "label": first["label"], "completion": T.pairwise_trace(first), "reward": 1.0},
        {"step": 1, "pair_id": first["id"] + SWAPPED_SUFFIX, "label": "x", "reward": 1.0,
         "completion": T.pairwise_trace(swap_pair(first))},
        # the swapped trace read as if it judged the original order: its checks describe the other responses
        {"step": 2, "pair_id": first["id"], "label": first["label"], "reward": 0.0,
         "completion": T.pairwise_trace(swap_pair(first))},
        {"step": 2, "pair_id": second["id"], "label": second["label"], "completion": pointwise_a, "reward": 1.0,
         "side": "a"},
        {"step": 2, "pair_id": "sotu-1", "label": "a", "completion": "x", "reward": -1.0},  # not a persona pair
    ]  # fmt: skip
    rows = R.rft_reasoning(records, {**by_id, "sotu-1": {"id": "sotu-1"}})
    assert list(rows["order"]) == ["original", "swapped", "original", "a"]
    assert list(rows["check_agreement"][:2]) == [1.0, 1.0] and rows["check_agreement"][3] == 1.0
    same = P.true_operators(first, "a") == P.true_operators(first, "b")
    assert rows["check_agreement"][2] == float(same)
    by_step = R.reasoning_by_step(rows).set_index("step")
    assert list(by_step["n_completions"]) == [2, 2]
    assert by_step.loc[1, "criteria_exact"] == 1.0 and by_step.loc[2, "criteria_exact"] == 1.0
    assert by_step.loc[2, "check_agreement"] == (float(same) + 1.0) / 2
    assert R.reasoning_by_step(R.rft_reasoning([], by_id)).empty
    headline = R.step_headline(by_step.reset_index())
    assert headline["rft_criteria_exact_first"] == 1.0 and headline["rft_format_last"] == 1.0
    assert headline["rft_check_agreement_last"] == round((float(same) + 1.0) / 2, 4)
    assert R.step_headline(R.reasoning_by_step(R.rft_reasoning([], by_id))) == {}


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)
