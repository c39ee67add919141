"""The GRPO reward (paper §3.3): tables of plain and conversational completions, and the tracker that
wraps it during training (persrm_lib.train.logs.RewardTracker, the writer of rft/completions.jsonl)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from persrm_lib.core.output_format import render_output
from persrm_lib.core.reward import OUTCOME_NAMES, completion_text, outcome_shares, persrm_reward
from persrm_lib.core.verdict import OUTCOME_NAMES as VERDICT_OUTCOMES
from persrm_lib.train.logs import GRPO_COMPLETION_FIELDS, RewardTracker, read_grpo_completions

A_WINS = render_output("sentence rhythm", "A keeps the author's rhythm", (8, 3))
B_WINS = render_output("sentence rhythm", "B keeps the author's rhythm", (2, 9.5))
TIE = render_output("sentence rhythm", "both alike", (5, 5))


def chat(content: object, role: str = "assistant") -> list[dict]:
    return [{"role": role, "content": content}]


REWARDS = [
    # (completion, label, reward)
    (A_WINS, "a", 1.0),  # plain text, correct preference
    (A_WINS, "b", 0.0),  # plain text, wrong preference
    (B_WINS, "b", 1.0),  # B labelled and scored higher
    (TIE, "a", 0.0),  # a tie is wrong
    (TIE, "b", 0.0),  # a tie is wrong for either label
    ("A is better. Scores: 8, 3", "a", -1.0),  # no tags: format violation
    (A_WINS + " Done.", "a", -1.0),  # text after </scores>: format violation
    (A_WINS.replace("[8, 3]", "[8, 3, 1]"), "a", -1.0),  # three numbers
    (A_WINS.replace("[8, 3]", "[80, 30]"), "a", -1.0),  # out of range
    ("", "b", -1.0),  # empty completion
    (chat(A_WINS), "a", 1.0),  # conversational, correct
    (chat(B_WINS), "a", 0.0),  # conversational, wrong
    (chat("no tags"), "b", -1.0),  # conversational, violation
    (chat(A_WINS) + chat("later turn"), "a", -1.0),  # the LAST assistant message is read
    (chat("no tags") + chat(A_WINS), "a", 1.0),  # ... in either direction
    (chat(A_WINS, role="user") + chat(B_WINS), "b", 1.0),  # non-assistant messages are skipped
    (chat(A_WINS, role="user"), "a", -1.0),  # no assistant message at all: violation
    ([], "a", -1.0),  # empty message list: violation
    (chat(None), "a", -1.0),  # assistant content missing: violation
    (chat(["not", "text"]), "a", -1.0),  # assistant content that is not text: violation
]


@pytest.mark.parametrize(("completion", "label", "reward"), REWARDS)
def test_reward_table(completion: object, label: str, reward: float) -> None:
    result = persrm_reward([completion], label=[label])
    assert result == [reward]
    assert isinstance(result[0], float)


def test_reward_is_batched_in_order() -> None:
    completions = [A_WINS, B_WINS, TIE, "junk"]
    assert persrm_reward(completions, label=["a", "a", "a", "a"], prompts=["p"] * 4, pair_id=["x"] * 4) == [
        1.0,
        0.0,
        0.0,
        -1.0,
    ]


def test_reward_length_mismatch() -> None:
    with pytest.raises(ValueError, match="persrm_reward got 2 completions but 1 labels"):
        persrm_reward([A_WINS, B_WINS], label=["a"])


@pytest.mark.parametrize("label", ["A", "chosen", ""])  # wrong case, a word, empty
def test_reward_bad_label(label: str) -> None:
    with pytest.raises(ValueError, match="label must be 'a' or 'b'"):
        persrm_reward([A_WINS], label=[label])


def test_completion_text_of_plain_and_chat() -> None:
    assert completion_text("x") == "x"
    assert completion_text(chat("y")) == "y"
    assert completion_text(chat("y", role="user")) is None


@pytest.mark.parametrize(
    ("rewards", "shares"),
    [
        ([1.0, 1.0], {"format_violation": 0.0, "wrong": 0.0, "correct": 1.0}),  # all correct
        ([-1.0, 0.0, 0.0, 1.0], {"format_violation": 0.25, "wrong": 0.5, "correct": 0.25}),  # mixed
        ([], {"format_violation": 0.0, "wrong": 0.0, "correct": 0.0}),  # nothing scored
    ],
)
def test_outcome_shares(rewards: list[float], shares: dict[str, float]) -> None:
    assert outcome_shares(rewards) == shares


def test_outcome_names_are_the_verdict_rule_s() -> None:
    assert OUTCOME_NAMES == ("format_violation", "wrong", "correct")
    assert OUTCOME_NAMES == tuple(VERDICT_OUTCOMES[k] for k in (-1, 0, 1))


def test_tracker_is_named_for_trl() -> None:
    from trl.trainer.utils import get_callable_name

    assert get_callable_name(RewardTracker()) == "persrm_reward"


def test_tracker_records_shares_metrics_and_completions(tmp_path) -> None:
    path = tmp_path / "rft" / "completions.jsonl"
    tracker = RewardTracker(completions_path=path)
    logged: list[tuple[str, float]] = []

    def log_metric(name: str, value: float) -> None:
        logged.append((name, value))

    state = SimpleNamespace(global_step=0)
    rewards = tracker(
        [chat(A_WINS), chat(TIE), chat("junk"), chat(B_WINS)],
        label=["a", "a", "b", "b"],
        pair_id=["p1", "p1", "p2", "p2"],
        trainer_state=state,
        log_metric=log_metric,
    )
    assert rewards == [1.0, 0.0, -1.0, 1.0]
    assert tracker.history == [
        {"step": 1, "n": 4, "reward_mean": 0.25, "format_violation": 0.25, "wrong": 0.25, "correct": 0.5}
    ]
    assert logged == [("outcome/format_violation", 0.25), ("outcome/wrong", 0.25), ("outcome/correct", 0.5)]

    state.global_step = 1
    tracker([A_WINS, A_WINS], label=["b", "b"], pair_id=["p3", "p3"], trainer_state=state)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 1, 1, 1, 2, 2]
    assert [r["pair_id"] for r in records] == ["p1", "p1", "p2", "p2", "p3", "p3"]
    assert [r["reward"] for r in records] == [1.0, 0.0, -1.0, 1.0, 0.0, 0.0]
    assert records[0] == {"step": 1, "pair_id": "p1", "label": "a", "completion": A_WINS, "reward": 1.0}
    assert all(tuple(r) == GRPO_COMPLETION_FIELDS for r in records)  # fixed names, fixed order
    assert read_grpo_completions(path) == records
    assert tracker.shares_between(1, 2) == {"format_violation": 1 / 6, "wrong": 3 / 6, "correct": 2 / 6}
    assert tracker.shares_between(2, 2) == {"format_violation": 0.0, "wrong": 1.0, "correct": 0.0}
    assert tracker.shares_between(5, 9) == {}


def test_tracker_other_ranks_write_their_own_file(tmp_path) -> None:
    tracker = RewardTracker(completions_path=tmp_path / "completions.jsonl", process_index=2)
    tracker([A_WINS], label=["a"], pair_id=["p1"])
    assert tracker.completions_path == tmp_path / "completions.rank2.jsonl"
    assert not (tmp_path / "completions.jsonl").exists()
    assert json.loads(tracker.completions_path.read_text())["step"] == 1


def test_tracker_without_trainer_numbers_calls() -> None:
    tracker = RewardTracker()
    tracker([A_WINS], label=["a"])
    tracker([A_WINS], label=["b"])
    assert [h["step"] for h in tracker.history] == [1, 2]
    assert [h["correct"] for h in tracker.history] == [1.0, 0.0]


def test_tracker_records_the_side_of_pointwise_completions(tmp_path) -> None:
    from persrm_lib.core.pointwise import pointwise_reward

    path = tmp_path / "completions.jsonl"
    tracker = RewardTracker(completions_path=path, reward_fn=pointwise_reward)
    high = "<criteria>c</criteria><eval>e</eval><score>8</score>"
    rewards = tracker([high, high], label=["a", "a"], pair_id=["p1", "p1"], side=["a", "b"])
    assert rewards == [1.0, 0.0]  # 8 is right for the chosen response A, wrong for the rejected B
    records = read_grpo_completions(path)
    assert [(r["side"], r["reward"]) for r in records] == [("a", 1.0), ("b", 0.0)]
    assert tuple(records[0]) == (*GRPO_COMPLETION_FIELDS, "side")


def test_read_grpo_completions_refuses_a_bad_side(tmp_path) -> None:
    path = tmp_path / "completions.jsonl"
    row = {"step": 1, "pair_id": "p1", "label": "a", "completion": "x", "reward": 0.0, "side": "c"}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=r"completions.jsonl:1: side must be 'a' or 'b', got 'c'"):
        read_grpo_completions(path)
