"""The pointwise formulation: format, reward, training rows, adapters and the judge."""

from __future__ import annotations

import json

import pytest

from persrm_lib.core import pointwise
from persrm_lib.core.output_format import parse_output

OK = "<criteria>lowercase</criteria>\n<eval>shows: lowercase. missing: none. extra: none.</eval>\n<score>{}</score>"


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        (OK.format(10), 10.0, None),  # the persona teacher's top score
        (OK.format("4.5"), 4.5, None),  # decimals are fine
        (OK.format(11), None, "score 11 is outside [0, 10]"),
        (OK.format("[8, 3]"), None, "score '[8, 3]' is not a number"),  # the pairwise scores in pointwise mode
        ("<criteria>c</criteria><eval>e</eval><scores>[8, 3]</scores>", None, "tag <score> is missing"),
        ("<criteria> </criteria><eval>e</eval><score>3</score>", None, "section <criteria> is empty"),
        ("<criteria>c</criteria><eval>e</eval><score>3</score> ok", None, "text after </score>"),
        (
            "<criteria>c</criteria><score>3</score><eval>e</eval>",
            None,
            "tags out of order: <criteria> </criteria> <score> </score> <eval> </eval>",
        ),
    ],
)
def test_parse_pointwise(text, score, reason):
    parsed = parse_output(text, mode="pointwise")
    assert parsed.score == score
    assert parsed.reason == reason
    assert parsed.scores is None


def test_pairwise_mode_refuses_a_pointwise_completion():
    assert parse_output(OK.format(7)).reason == "tag <scores> is missing"
    with pytest.raises(ValueError, match="mode must be one of"):
        parse_output(OK.format(7), mode="listwise")


@pytest.mark.parametrize(
    ("text", "chosen", "outcome"),
    [
        (OK.format(9), True, 1),  # the author's response scored above the midpoint
        (OK.format(9), False, 0),  # the other response scored above it: wrong side
        (OK.format(2), False, 1),
        (OK.format(5), True, 0),  # exactly the midpoint takes no side
        (OK.format(5), False, 0),
        ("Score: 9", True, -1),  # format violation
        (None, True, -1),  # not text
    ],
)
def test_pointwise_outcome(text, chosen, outcome):
    assert pointwise.pointwise_outcome(text, chosen) == outcome


def test_pointwise_reward_reads_side_and_label():
    completions = [OK.format(9), OK.format(2), [{"role": "assistant", "content": OK.format(2)}]]
    assert pointwise.pointwise_reward(completions, label=["a", "a", "b"], side=["a", "b", "a"], trainer_state=None) == [
        1.0,
        1.0,
        1.0,
    ]
    with pytest.raises(ValueError, match="got 1 completions, 2 labels and 1 sides"):
        pointwise.pointwise_reward([OK.format(9)], label=["a", "b"], side=["a"])
    with pytest.raises(ValueError, match="side must be 'a' or 'b', got 'c'"):
        pointwise.pointwise_reward([OK.format(9)], label=["a"], side=["c"])


def test_side_rows_and_joined_completions():
    rows = pointwise.side_rows([{"id": "p1", "label": "a"}, {"id": "p2", "label": "b"}])
    assert [(r["id"], r["side"], r["chosen"]) for r in rows] == [
        ("p1", "a", True), ("p1", "b", False), ("p2", "a", False), ("p2", "b", True)
    ]  # fmt: skip
    joined = pointwise.join_completions(OK.format(9), OK.format(1))
    assert pointwise.split_completions(joined) == (OK.format(9), OK.format(1))
    assert pointwise.split_completions(OK.format(9)) is None


def test_pointwise_prompt_shows_one_response_and_no_letter():
    from persrm_lib.core.prompt import build_pointwise_messages

    pair = {
        "query": "Write.",
        "exemplars": ["e one", "e two"],
        "response_a": "first text",
        "response_b": "second text",
        "n_exemplars": 1,
    }
    user = build_pointwise_messages(pair, "b", 1)[1]["content"]
    assert user == "Exemplar 1:\ne one\n\nQuery:\nWrite.\n\nResponse:\nsecond text"
    with pytest.raises(ValueError, match="side must be 'a' or 'b', got 'x'"):
        build_pointwise_messages(pair, "x")


def _persona_trace():
    from persrm_lib.teachers.persona import pairwise_trace

    pair = {
        "id": "personas-1", "query": "Write.", "exemplars": ["we came & we saw, we won."], "n_exemplars": 1,
        "response_a": "they left & they came, they stayed.", "response_b": "They left & they came, they stayed.",
        "label": "a", "positive_kind": "intra-author-retrieval", "negative_kind": "adversarial", "author": "ampersand+lowercase",
        "genre": "address", "persona": ["lowercase", "ampersand"], "rejected_persona": ["ampersand"],
    }  # fmt: skip
    return {**pair, "teacher": "persona", "completion": pairwise_trace(pair), "scores": [10, 4], "faithful": True}


def test_sft_rows_pointwise_give_two_examples_per_trace():
    from persrm_lib.train.data import sft_rows

    trace = _persona_trace()
    rows = sft_rows([trace], mode="pointwise")
    assert [r[0] for r in rows] == ["personas-1/a", "personas-1/b"]
    assert rows[0][2].endswith("<score>10</score>") and rows[1][2].endswith("<score>4</score>")
    assert rows[1][1][1]["content"].endswith("Response:\nThey left & they came, they stayed.")
    assert [r[0] for r in sft_rows([trace])] == ["personas-1"]  # pairwise: the trace as it is


def test_sft_rows_pointwise_refuse_a_non_persona_trace():
    from persrm_lib.train.data import TrainingDataError, sft_rows

    trace = _persona_trace()
    del trace["persona"], trace["rejected_persona"]
    with pytest.raises(TrainingDataError, match="trace 'personas-1': pair 'personas-1' is not a persona pair"):
        sft_rows([trace], mode="pointwise")


@pytest.mark.parametrize(
    ("info", "mode", "error"),
    [
        (None, "pairwise", None),  # no training info: an adapter trained elsewhere reads pairwise
        ({"stage": "sft"}, "pairwise", None),  # saved before the setting existed
        ({"mode": "pointwise"}, "pointwise", None),
        ({"mode": "listwise"}, None, "names an unknown mode 'listwise'"),
        ("{not json", None, "is not valid JSON"),
    ],
)
def test_adapter_mode(tmp_path, info, mode, error):
    from persrm_lib.train.adapters import TRAINING_INFO, adapter_mode

    if info is not None:
        (tmp_path / TRAINING_INFO).write_text(info if isinstance(info, str) else json.dumps(info))
    if error:
        with pytest.raises(ValueError, match=error):
            adapter_mode(tmp_path)
    else:
        assert adapter_mode(tmp_path) == mode


def test_generative_judge_takes_the_adapters_mode(tmp_path, tiny_model_dir):
    from persrm_lib.evaluate.lm_judges import GenerativeJudge
    from persrm_lib.models.registry import load_model
    from persrm_lib.train.adapters import TRAINING_INFO

    (tmp_path / TRAINING_INFO).write_text(json.dumps({"mode": "pointwise"}))
    loaded = load_model("tiny-random")
    judge = GenerativeJudge("tiny-random", adapter=tmp_path, loaded=loaded, max_new_tokens=4)
    assert judge.mode == "pointwise" and judge.position_invariant is True and judge.stop_strings == ("</score>",)
    pair = {"id": "p", "query": "Q", "exemplars": ["E"], "response_a": "A", "response_b": "B", "label": "a"}
    verdict = judge.score_batch([pair])[0]
    assert verdict.scores is None  # a random model writes no format
    assert pointwise.split_completions(verdict.completion) is not None  # both completions kept
    assert GenerativeJudge("tiny-random", loaded=loaded).mode == "pairwise"
    with pytest.raises(ValueError, match="mode must be pairwise or pointwise, got 'x'"):
        GenerativeJudge("tiny-random", loaded=loaded, mode="x")
