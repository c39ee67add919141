"""Order-robust GRPO: joint-order advantages, the paired sampler, and the TRL subclass on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from persrm_lib.core.output_format import render_output
from persrm_lib.train.order_robust import (
    PairedOrderSampler,
    a_preference,
    end_at_stop,
    joint_advantages,
    paired_orders,
    persrm_grpo_trainer_class,
    swap_orders,
)

A_WINS = render_output("c", "A fits.", (7, 3))
B_WINS = render_output("c", "B fits.", (3, 7))


def _cpu_config(tmp_path, **settings):
    """A GRPOConfig for a tiny CPU run: two samples per prompt, no saving, no reporting."""
    from trl import GRPOConfig

    common = {"num_generations": 2, "logging_steps": 1, "report_to": [], "use_cpu": True, "bf16": False}
    common |= {"fp16": False, "seed": 0, "disable_tqdm": True, "save_strategy": "no"}
    return GRPOConfig(output_dir=str(tmp_path), **common, **settings)


def _per_prompt_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """TRL's default: normalise within the samples of one prompt (reference for the comparison)."""
    grouped = rewards.view(-1, group)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)


def test_an_always_a_policy_gets_zero_advantage_per_prompt_but_not_jointly():
    # one pair labelled a (original order) then b (swapped), 4 samples each, all answering "A":
    # rewards +1 x4 on the A-labelled order, 0 x4 on the B-labelled order
    rewards = torch.tensor([1.0] * 4 + [0.0] * 4)
    assert _per_prompt_advantages(rewards, 4).abs().max().item() == 0.0
    joint, zero_std = joint_advantages(rewards, group_size=8)
    assert [round(x, 4) for x in joint.tolist()] == [0.9352] * 4 + [-0.9352] * 4  # 0.5 / (0.5345 + 1e-4)
    assert zero_std.tolist() == [False] * 8


def test_joint_advantages_match_trl_on_a_group_of_one_order():
    rewards = torch.tensor([1.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, -1.0])
    joint, _ = joint_advantages(rewards, group_size=8)
    expected = _per_prompt_advantages(rewards, 8)
    assert torch.allclose(joint, expected, atol=1e-6)


def test_consistency_bonus_rewards_sample_pairs_right_in_both_orders():
    # sample 0 right in both orders, sample 1 right only in the original order
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0])
    plain, _ = joint_advantages(rewards, group_size=4)
    bonus, _ = joint_advantages(rewards, group_size=4, consistency_bonus=0.5)
    assert plain[0].item() == pytest.approx(plain[1].item())
    assert bonus[0].item() > bonus[1].item()
    assert bonus[2].item() > bonus[3].item()


def test_unscorable_rows_get_zero_advantage_and_a_group_of_equal_rewards_is_flagged():
    joint, zero_std = joint_advantages(torch.tensor([1.0, float("nan"), 1.0, 1.0]), group_size=4)
    assert joint.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert zero_std.tolist() == [True] * 4


@pytest.mark.parametrize(
    ("rewards", "group", "scale", "message"),
    [
        (torch.zeros(6), 4, "group", "6 rewards do not split into joint groups of 4"),
        (torch.zeros(6), 3, "group", "group_size must be even (2 x num_generations), got 3"),
        (torch.zeros(4), 4, "max", "scale must be 'group', 'batch' or 'none', got 'max'"),
    ],
)
def test_joint_advantages_refuse_bad_shapes(rewards, group, scale, message):
    with pytest.raises(ValueError) as info:
        joint_advantages(rewards, group, scale=scale)
    assert str(info.value) == message


def test_paired_orders_lays_out_each_pair_then_its_swap():
    pair = {"id": "p", "response_a": "x", "response_b": "y", "label": "a"}
    rows = paired_orders([pair, pair | {"id": "q", "label": "b"}])
    assert [(r["id"], r["label"], r["response_a"]) for r in rows] == [
        ("p", "a", "x"),
        ("p:swapped", "b", "y"),
        ("q", "b", "x"),
        ("q:swapped", "a", "y"),
    ]
    with pytest.raises(ValueError, match="'p:swapped' is already a swapped copy"):
        paired_orders([swap_orders(pair)])


def test_sampler_keeps_both_orders_of_a_pair_in_one_joint_group():
    sampler = PairedOrderSampler(10, num_generations=3, pairs_per_batch=2, repeat_count=2, shuffle=True, seed=7)
    order = list(sampler)
    assert len(order) == len(sampler) == 4 * 2 * 2 * 3  # 2 full batches of 2 pairs, repeated twice, 2 orders x 3
    groups = [order[i : i + 6] for i in range(0, len(order), 6)]
    for group in groups:
        first, second = group[0], group[3]
        assert first % 2 == 0 and second == first + 1
        assert group == [first] * 3 + [second] * 3
    assert list(PairedOrderSampler(10, 3, 2, 2, True, 7)) == order  # seeded: the same order again
    with pytest.raises(ValueError, match="an even number of rows"):
        PairedOrderSampler(5, 3, 1)


def test_a_preference_counts_parsed_verdicts_only():
    assert a_preference([A_WINS, A_WINS, B_WINS, "broken"]) == pytest.approx(2 / 3)
    assert math.isnan(a_preference(["broken"]))


def test_order_robust_trainer_trains_a_tiny_model_with_joint_groups(tmp_path):
    from datasets import Dataset

    from persrm_lib.core.prompt import build_messages
    from persrm_lib.models.registry import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-random")
    pairs = [
        {
            "id": f"p{i}",
            "query": "Write.",
            "exemplars": ["I came; I saw."],
            "response_a": f"We came {i}.",
            "response_b": f"Hello there {i}!",
            "label": "a" if i % 2 else "b",
            "n_exemplars": 1,
        }
        for i in range(4)
    ]
    rows = paired_orders(pairs)
    dataset = Dataset.from_dict(
        {
            "prompt": [build_messages(r) for r in rows],
            "label": [r["label"] for r in rows],
            "id": [r["id"] for r in rows],
        }
    )
    seen: list[list[str]] = []

    def always_a(completions, label, id, **kwargs):  # noqa: A002 - TRL passes dataset columns by name
        # the reward an always-A policy earns: +1 where A is the chosen side, 0 where B is
        seen.append(list(id))
        return [1.0 if lab == "a" else 0.0 for lab in label]

    config = _cpu_config(
        tmp_path, per_device_train_batch_size=4, max_completion_length=8, max_steps=2, learning_rate=1e-2
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = persrm_grpo_trainer_class(stop_strings=())(
        model=model, reward_funcs=[always_a], args=config, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    # every generation batch holds one pair in both orders: id, id, id:swapped, id:swapped
    for ids in seen:
        assert ids[2] == ids[0] + ":swapped" and ids[1] == ids[0] and ids[3] == ids[2]
    steps = [row for row in trainer.state.log_history if "frac_reward_zero_std" in row]
    assert [row["frac_reward_zero_std"] for row in steps] == [1.0, 1.0]  # TRL's per-prompt groups: no signal
    assert [row["joint/frac_reward_zero_std"] for row in steps] == [0.0, 0.0]  # joint groups: a signal
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert changed  # training moved the parameters


def test_end_at_stop_turns_the_first_pad_after_a_stopped_completion_into_eos():
    eos, pad = 2, 0
    sequences = torch.tensor(
        [
            [9, 9, 5, 6, 0, 0],  # stopped by a stop string after 5, 6: padded
            [9, 9, 5, 2, 0, 0],  # ended by EOS: unchanged
            [9, 9, 5, 6, 7, 8],  # ran to the length limit: unchanged
        ]
    )
    out = end_at_stop(sequences.clone(), prompt_length=2, eos_id=eos, pad_id=pad)
    assert out.tolist() == [[9, 9, 5, 6, 2, 0], [9, 9, 5, 2, 0, 0], [9, 9, 5, 6, 7, 8]]
    assert end_at_stop(sequences.clone(), 2, eos_id=2, pad_id=2).tolist() == sequences.tolist()


def test_sampling_stops_after_scores(tmp_path):
    """A tiny model that is made to write the verdict: generation ends right after </scores>."""
    from datasets import Dataset

    from persrm_lib.models.registry import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-random")
    target = tokenizer("<scores>[1, 2]</scores> trailing text", add_special_tokens=False)["input_ids"]

    seen: list[str] = []

    def record(completions, **kwargs):
        seen.extend(c[0]["content"] if isinstance(c, list) else c for c in completions)
        return [0.0] * len(completions)

    original_forward = model.forward
    step = {"i": 0}

    def forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        # force the next token to follow the scripted text, whatever the prompt
        position = kwargs["input_ids"].shape[1] if kwargs.get("past_key_values") is None else None
        logits = out.logits.clone()
        logits[:, -1, :] = -1e9
        index = min(step["i"], len(target) - 1)
        logits[:, -1, target[index]] = 1e9
        step["i"] = 0 if position is not None else step["i"] + 1
        out.logits = logits
        return out

    model.forward = forward
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "judge"}]] * 2})
    config = _cpu_config(
        tmp_path, per_device_train_batch_size=2, max_completion_length=24, max_steps=1, learning_rate=0.0
    )
    trainer = persrm_grpo_trainer_class(joint_orders=False)(
        model=model, reward_funcs=[record], args=config, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    assert seen == ["<scores>[1, 2]</scores>"] * 2  # the scripted " trailing text" was never sampled


def test_sft_data_in_both_orders_is_exactly_balanced():
    from persrm_lib.teachers.swap import both_orders

    traces = [
        {
            "id": f"t{i}",
            "label": "a" if i < 5 else "b",
            "response_a": "x",
            "response_b": "y",
            "scores": [7, 3],
            "completion": render_output("c", "A 0.9, B 0.2; A.", (7, 3) if i < 5 else (3, 7)),
        }
        for i in range(7)
    ]
    rows = both_orders(traces)
    assert len(rows) == 14
    assert sum(r["label"] == "a" for r in rows) == 7  # 5 of 7 labelled A before, exactly half after
