"""Hand-made pairs for the judge, metric and evaluation tests: two authors with plainly different
styles (long formal sentences with semicolons vs short exclamatory chat), so a stylometric judge
has something real to find. Deterministic; no randomness."""

from __future__ import annotations

from typing import Any

FORMAL = (
    "It is, I believe, the duty of every citizen to consider with care the obligations which the constitution places upon us; for without such reflection the union cannot endure.",
    "The report of the treasury, which I have the honor to transmit, shows that the revenues of the past year have exceeded the expenditures; the surplus, therefore, ought to be applied to the reduction of the public debt.",
    "In the conduct of our foreign relations it has been my constant aim to preserve the peace which we enjoy; and I am persuaded that the same policy will be pursued by those who shall succeed me.",
    "The condition of the army and of the navy is, upon the whole, satisfactory; yet I would recommend to the attention of the congress the state of the fortifications upon our coast.",
    "It is with profound gratification that I inform you that the treaty with the neighbouring republic has been ratified; its provisions, which are set forth in the papers herewith submitted, are liberal and just.",
    "The agricultural interests of the nation, upon which the prosperity of all other pursuits must ultimately depend, deserve the fostering care of the government; and I submit that their protection is a duty.",
)
CASUAL = (
    "omg you guys!! the game last night was SO good. we won by like 20 pts lol. cant wait for friday!!",
    "ok so i tried that new taco place. honestly? amazing. go. go now. bring me one too haha",
    "ugh mondays. my alarm didnt go off and i missed the bus AGAIN. send coffee pls!!",
    "guess who got the tickets?? me!!! front row baby. gonna be epic, no cap",
    "lol my cat just knocked my phone off the table and then stared at me like it was MY fault",
    "not gonna lie the finale kinda wrecked me. who else cried?? just me?? ok cool cool",
)


def make_pairs(n: int = 8, n_exemplars: int = 2) -> list[dict[str, Any]]:
    """``n`` canonical pairs alternating the author, the label and the negative kind.

    Pair ``i`` takes exemplars and the chosen response from one author and the rejected response
    from the other; the chosen response sits in slot A for even ``i`` and slot B for odd ``i``.
    """
    pairs = []
    for i in range(n):
        own, other = (FORMAL, CASUAL) if (i // 2) % 2 == 0 else (CASUAL, FORMAL)
        exemplars = [own[(i + k) % len(own)] for k in range(n_exemplars)]
        chosen = own[(i + n_exemplars) % len(own)]
        rejected = other[i % len(other)]
        label = "a" if i % 2 == 0 else "b"
        pairs.append(
            {
                "id": f"pair-{i:02d}",
                "query": "Write a short text on a subject of your choice.",
                "exemplars": exemplars,
                "response_a": chosen if label == "a" else rejected,
                "response_b": rejected if label == "a" else chosen,
                "label": label,
                "positive_kind": "intra_author",
                "negative_kind": "cross_author" if i % 3 else "random",
                "author": "formal" if own is FORMAL else "casual",
                "genre": "speech" if own is FORMAL else "chat",
                "n_exemplars": n_exemplars,
            }
        )
    return pairs


def write_log(path, fields, rows) -> None:
    """A training log.csv with the given header (missing values left blank)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})


def save_tiny_adapter(folder, profile_name: str = "tiny", seed: int = 0):
    """An (untrained) LoRA adapter of the profile's model, saved as 03/04 save theirs."""
    import torch
    from peft import get_peft_model

    from persrm_lib.core.config import get_profile
    from persrm_lib.models.backend import lora_config
    from persrm_lib.models.registry import load_model

    profile = get_profile(profile_name)
    model, tokenizer = load_model(profile.model.name)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora_config(profile))
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


SFT_ROWS = [{"step": s, "epoch": s / 4, "loss": 2.0 - 0.3 * s, "learning_rate": 1e-3} for s in (1, 2, 3, 4)]
RFT_ROWS = [
    {
        "step": 1,
        "a_preference": 1.0,
        "frac_reward_zero_std": 1.0,
        "loss": 0.01,
        "learning_rate": 1e-5,
        "reward": -0.5,
        "format_violation": 0.5,
        "wrong": 0.5,
        "correct": 0.0,
        "kl": 0.0,
        "completion_length": 30,
    },
    {
        "step": 2,
        "a_preference": 0.75,
        "frac_reward_zero_std": 0.5,
        "loss": 0.02,
        "learning_rate": 1e-5,
        "reward": 0.25,
        "format_violation": 0.0,
        "wrong": 0.75,
        "correct": 0.25,
        "kl": 0.01,
        "completion_length": 28,
    },
    {
        "step": 3,
        "a_preference": 0.5,
        "frac_reward_zero_std": 0.25,
        "loss": 0.03,
        "learning_rate": 1e-5,
        "reward": 0.5,
        "format_violation": 0.0,
        "wrong": 0.5,
        "correct": 0.5,
        "kl": 0.02,
        "completion_length": 26,
    },
]
RFT_FROM_BASE_ROWS = [
    {"step": 1, "reward": -1.0, "format_violation": 1.0, "wrong": 0.0, "correct": 0.0},
    {"step": 2, "reward": -0.75, "format_violation": 0.75, "wrong": 0.25, "correct": 0.0},
]


def make_run(root, adapters: tuple[str, ...] = ("sft", "rft"), with_logs: bool = True):
    """A run folder for the tiny profile: train and test pairs, adapters, training logs."""
    from pathlib import Path

    from persrm_lib.core import runfiles
    from persrm_lib.data.pairs import write_pairs
    from persrm_lib.train.logs import GRPO_LOG_FIELDS, SFT_LOG_FIELDS

    run = Path(root) / "run"
    write_pairs(make_pairs(8), runfiles.pairs_path(run, "train"))
    write_pairs(make_pairs(16)[8:], runfiles.pairs_path(run, "test_sotu"))
    write_pairs([{**p, "id": f"aaac-{p['id']}"} for p in make_pairs(24)[16:]], runfiles.pairs_path(run, "test_aaac"))
    for stage in adapters:
        save_tiny_adapter(runfiles.adapter_dir(run, stage), seed=len(stage))
    if with_logs:
        write_log(runfiles.log_path(run, "sft"), SFT_LOG_FIELDS, SFT_ROWS)
        write_log(runfiles.log_path(run, "rft"), GRPO_LOG_FIELDS, RFT_ROWS)
        write_log(runfiles.log_path(run, "rft_from_base"), GRPO_LOG_FIELDS, RFT_FROM_BASE_ROWS)
    return run


def stage_rows(judge: str, verdicts: dict[int, tuple[str, str]], benchmark: str = "sotu") -> list[dict]:
    """Rows of one judge on pairs labelled "a": pair id -> (original verdict, swapped verdict)."""
    return [
        {
            "judge": judge,
            "id": i,
            "n_exemplars": 3,
            "benchmark": benchmark,
            "label": "a",
            # the pair's verdict from the averaged scores: right only when both orders are
            "preferred": "a" if (p, q) == ("a", "b") else None,
            "format_ok": True,
            "original_preferred": p,
            "original_format_ok": True,
            "swapped_preferred": q,
            "swapped_format_ok": True,
        }
        for i, (p, q) in verdicts.items()
    ]
