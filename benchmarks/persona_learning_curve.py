"""Learning curves on the persona benchmark: which formulation does a small model learn on a CPU?

For each formulation, SmolLM2-135M-Instruct + LoRA is trained on persona pairs
(:mod:`persrm_lib.data.personas`) with the persona teacher's completions
(:mod:`persrm_lib.teachers.persona`), and judged every ``--eval-every`` optimiser steps on held-out
pairs (unseen base passages, unseen persona combinations, one operator never taught), by greedy
generation parsed with the project's one parser. A row per checkpoint is appended to ``--out``
(CSV) as it goes, so a run that is stopped keeps what it measured.

Formulations (two training examples per pair in each, so the x-axes are comparable):

- ``pairwise-verdict``: the paper's pairwise prompt, a fixed analysis and the verdict
  (``<scores>[8, 3]</scores>``); both orders of every pair.
- ``pairwise-trace``: the paper's pairwise prompt and the persona teacher's trace; both orders.
- ``pointwise-trace``: one response at a time (:func:`persrm_lib.core.prompt.build_pointwise_messages`),
  the persona teacher's pointwise trace; a pair is judged by comparing the two scores (ties are
  wrong), so it is order-consistent by construction.

Usage (two threads, nothing else heavy running; about 2.2 s per pointwise step of 2 examples here).
The README's curve was made by the first command (its rows to 750 steps by an earlier run stopped at
750 steps, which this command reproduced digit for digit); the second extends it from its saved state (the LoRA weights, optimizer
state and step at the last checkpoint, ``--state-dir``) with the same data order, as if the run had
never stopped; the third prints the table and draws the figure::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/persona_learning_curve.py --formulation pointwise-trace \\
        --steps 1500 --eval-at 250 500 750 1000 1250 1500 --words 20 --test-pairs 32 --val-pairs 32 \\
        --out results/personas/learning_curve.csv
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/persona_learning_curve.py --formulation pointwise-trace \\
        --steps 3000 --eval-at 2000 2500 3000 --words 20 --test-pairs 32 --val-pairs 32 --resume \\
        --out results/personas/learning_curve.csv
    .venv/bin/python benchmarks/persona_learning_curve.py report results/personas/learning_curve.csv \\
        figures/persona_learning_curve.png

The same curves on a GPU, several runs sharing it (``benchmarks/gpu_persona_curves.sh``), write the
same columns; ``--device cuda --eval-batch 64 --pairs-dir DIR`` runs one there on pairs built here.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

FORMULATIONS = ("pairwise-verdict", "pairwise-trace", "pointwise-trace")
QUERY = "Write a short passage in your own style."
FIELDS = (
    "formulation", "step", "examples", "train_loss", "n_pairs", "format", "accuracy", "order_consistent",
    "a_preference", "criteria_exact", "oc_held_out_operator", "oc_unseen_combination", "oc_adversarial",
    "val_order_consistent", "val_criteria_exact", "eval_seconds", "train_seconds", "lr", "rank", "batch",
    "passage_words", "seed", "device", "lora_layers", "loraplus_ratio",
)  # fmt: skip
# columns a CSV written before they existed may lack, with the value that reproduces what it measured
LATER_FIELDS = {"lora_layers": 0, "loraplus_ratio": 0.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formulation", nargs="+", choices=FORMULATIONS, default=list(FORMULATIONS))
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps per formulation")
    parser.add_argument(
        "--eval-at",
        type=int,
        nargs="+",
        default=[250, 500, 1000, 1500],
        help="steps after which to judge the held-out pairs",
    )
    parser.add_argument("--base", action="store_true", help="also judge the untrained model (step 0)")
    parser.add_argument("--batch", type=int, default=2, help="training examples per step")
    parser.add_argument("--lr", type=float, default=3e-4, help="LoRA learning rate (constant after 20 warm-up steps)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (all projections; alpha = 2 x rank)")
    parser.add_argument(
        "--lora-layers",
        type=int,
        default=0,
        help="adapt only the top N transformer layers (0: all); the backward pass then stops at the lowest "
        "adapted layer, so a step costs less",
    )
    parser.add_argument(
        "--loraplus-ratio",
        type=float,
        default=0.0,
        help="LoRA+ (PEFT's create_loraplus_optimizer): the B matrices learn at this multiple of --lr, "
        "the A matrices at --lr (0: plain LoRA, one rate)",
    )
    parser.add_argument("--words", type=int, default=20, help="base passage length in words")
    parser.add_argument("--train-pairs", type=int, default=1500)
    parser.add_argument("--test-pairs", type=int, default=32)
    parser.add_argument(
        "--val-pairs", type=int, default=32, help="in-distribution pairs: taught personas, unseen passages"
    )
    parser.add_argument("--exemplars", type=int, default=1, help="exemplars per pair")
    parser.add_argument("--held-out-operator", default="ellipsis")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument(
        "--device", default="cpu", help="torch device to train and judge on (cpu, cuda); float32 on either"
    )
    parser.add_argument("--eval-batch", type=int, default=8, help="prompts per batch of greedy generation")
    parser.add_argument(
        "--pairs-dir",
        type=Path,
        help="read the train/test/validation pairs from DIR/<split>.jsonl, building and writing them there "
        "first when absent (a machine without the offline corpora can then run the curve on the same pairs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="CSV, appended to (one row per checkpoint)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("runs/persona_curve_state"),
        help="the LoRA weights, optimizer state and step saved at every checkpoint (<formulation>.pt)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each formulation from its saved state (same data order: the run extends as if never stopped)",
    )
    args = parser.parse_args(argv)
    for name in (
        "steps", "batch", "rank", "words", "train_pairs", "test_pairs", "val_pairs", "exemplars", "threads",
        "eval_batch",
    ):  # fmt: skip
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.lr < 1:
        parser.error(f"--lr must be in (0, 1), got {args.lr}")
    if args.lora_layers < 0:
        parser.error(f"--lora-layers must be 0 (all layers) or more, got {args.lora_layers}")
    if args.loraplus_ratio != 0 and args.loraplus_ratio < 1:
        parser.error(f"--loraplus-ratio must be 0 (plain LoRA) or at least 1, got {args.loraplus_ratio}")
    problem = out_columns_problem(args.out, args)
    if problem:
        parser.error(problem)
    return args


def option(name: str, value: float) -> str:
    """The command-line option that sets argument ``name`` to ``value`` (``--lora-layers 15``)."""
    return f"--{name.replace('_', '-')} {value:g}"


def read_header(out: Path) -> list[str] | None:
    """The columns of an existing, non-empty CSV; None when there is none yet."""
    if not out.is_file() or out.stat().st_size == 0:
        return None
    with out.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def out_columns_problem(out: Path, args: argparse.Namespace) -> str | None:
    """Why rows of this run cannot be appended to ``out`` (None when they can): an existing CSV must hold
    this script's columns, or lack only columns of :data:`LATER_FIELDS` whose value this run leaves at
    the default (its rows then mean what the file's earlier rows mean)."""
    header = read_header(out)
    if header is None:
        return None
    missing = [name for name in FIELDS if name not in header]
    unknown = [name for name in header if name not in FIELDS]
    if unknown or any(name not in LATER_FIELDS for name in missing):
        return f"--out {out} has other columns than this script writes ({', '.join(unknown or missing)}): write to a new file"
    for name in missing:
        if getattr(args, name) != LATER_FIELDS[name]:
            return (
                f"--out {out} has no {name} column, so it cannot hold a {option(name, getattr(args, name))} run: "
                "write to a new file"
            )
    return None


SPLITS = ("train", "test", "validation")


def load_pairs(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[dict]]:
    """The curve's pairs: built from the offline corpora, or read from ``--pairs-dir`` (written there
    first when the folder holds none, so that the same pairs can travel to another machine)."""
    from persrm_lib.data.pairs import read_pairs, write_pairs

    if args.pairs_dir is None:
        return build_pairs(args)
    paths = [args.pairs_dir / f"{split}.jsonl" for split in SPLITS]
    present = [path.is_file() for path in paths]
    if all(present):
        train, test, val = (read_pairs(path) for path in paths)
        return train, test, val
    if any(present):
        missing = ", ".join(str(path) for path, ok in zip(paths, present, strict=True) if not ok)
        raise SystemExit(
            f"--pairs-dir {args.pairs_dir} holds some split files but not {missing}: remove them or add them"
        )
    built = build_pairs(args)
    for path, pairs in zip(paths, built, strict=True):
        write_pairs(pairs, path)
    return built


def build_pairs(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[dict]]:
    from persrm_lib.data.personas import build_persona_pairs, persona_base_passages, persona_splits
    from persrm_lib.data.synonyms import WordNetSynonyms

    docs = persona_base_passages(args.words, 1000, args.seed)
    splits = persona_splits(args.held_out_operator, 2, 0.3, args.seed)
    synonyms = WordNetSynonyms()
    out = []
    for split, n in zip(SPLITS, (args.train_pairs, args.test_pairs, args.val_pairs), strict=True):
        out.append(
            build_persona_pairs(
                docs[docs["split"] == split], splits[split], n, args.exemplars, args.seed,
                query=QUERY, synonyms=synonyms, id_prefix=f"personas-{split}",
            )
        )  # fmt: skip
    return out[0], out[1], out[2]


def verdict_completion(label: str) -> str:
    from persrm_lib.core.output_format import render_output

    scores = (8, 3) if label == "a" else (3, 8)
    return render_output("the style of the exemplars", "A and B compared with the exemplars", scores)


def examples_for(formulation: str, pair: dict, tokenizer: Any) -> list[tuple[str, str]]:
    """(templated prompt, completion) training examples for one pair: two per pair."""
    from persrm_lib.core.prompt import build_messages, build_pointwise_messages
    from persrm_lib.data.pairs import swap_pair
    from persrm_lib.teachers.persona import pairwise_trace, pointwise_trace

    def template(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    if formulation == "pointwise-trace":
        return [
            (
                template(build_pointwise_messages(pair, side, tokenizer=tokenizer)),
                pointwise_trace(pair["exemplars"], pair[f"response_{side}"]),
            )
            for side in "ab"
        ]
    out = []
    for p in (pair, swap_pair(pair)):
        completion = verdict_completion(p["label"]) if formulation == "pairwise-verdict" else pairwise_trace(p)
        out.append((template(build_messages(p, tokenizer=tokenizer)), completion))
    return out


def generation_budget(formulation: str, pairs: list[dict], tokenizer: Any) -> int:
    """New tokens a judge may write on ``pairs``: pointwise 72; pairwise as long as the longest
    completion taught for these pairs, and 24 tokens more (a budget that cuts a right answer short
    would be counted as a format failure of the model)."""
    if formulation == "pointwise-trace":
        return 72
    taught = [completion for p in pairs for _, completion in examples_for(formulation, p, tokenizer)]
    return max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in taught) + 24


def evaluate(
    formulation: str, model: Any, tokenizer: Any, test: list[dict], max_new: int, batch_size: int = 8
) -> dict[str, Any]:
    """Greedy judging of the held-out pairs (at most ``max_new`` new tokens, :func:`generation_budget`);
    pairwise formulations in both orders."""
    from persrm_lib.core.output_format import parse_output
    from persrm_lib.core.pointwise import pair_verdict
    from persrm_lib.core.prompt import build_messages, build_pointwise_messages
    from persrm_lib.core.verdict import read_verdict
    from persrm_lib.data.pairs import swap_pair
    from persrm_lib.models.generation import generate
    from persrm_lib.teachers.persona import read_criteria

    def template(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    start = time.perf_counter()
    model.eval()
    rows = []
    if formulation == "pointwise-trace":
        prompts = [template(build_pointwise_messages(p, side, tokenizer=tokenizer)) for p in test for side in "ab"]
        texts = generate(
            model, tokenizer, prompts, max_new_tokens=max_new, batch_size=batch_size, stop_strings=("</score>",)
        ).texts
        for i, pair in enumerate(test):
            parsed = [parse_output(texts[2 * i + k], mode="pointwise") for k in (0, 1)]
            crit = [read_criteria(p.criteria) == frozenset(pair["persona"]) for p in parsed]
            right = pair_verdict(texts[2 * i], texts[2 * i + 1]).preferred == pair["label"]
            rows.append(
                {"pair": pair, "format": [p.ok for p in parsed], "right": [right, right], "a": [], "crit": crit}
            )
    else:
        both = [(p, q) for p in test for q in (p, swap_pair(p))]
        prompts = [template(build_messages(q, tokenizer=tokenizer)) for _, q in both]
        texts = generate(
            model, tokenizer, prompts, max_new_tokens=max_new, batch_size=batch_size, stop_strings=("</scores>",)
        ).texts
        for i, pair in enumerate(test):
            parsed = [parse_output(texts[2 * i + k]) for k in (0, 1)]
            preferred = [read_verdict(texts[2 * i + k]).preferred for k in (0, 1)]
            labels = [pair["label"], "b" if pair["label"] == "a" else "a"]
            rows.append(
                {
                    "pair": pair,
                    "format": [p.ok for p in parsed],
                    "right": [p == y for p, y in zip(preferred, labels, strict=True)],
                    "a": [p == "a" for p in preferred],
                    "crit": [read_criteria(p.criteria) == frozenset(pair["persona"]) for p in parsed],
                }
            )
    n = len(rows)

    def oc(subset: list[dict]) -> float | str:
        return round(sum(all(r["right"]) for r in subset) / len(subset), 4) if subset else ""

    held = [r for r in rows if args_held_out in r["pair"]["persona"]]
    return {
        "n_pairs": n,
        "format": round(sum(sum(r["format"]) for r in rows) / (2 * n), 4),
        "accuracy": round(sum(sum(r["right"]) for r in rows) / (2 * n), 4),
        "order_consistent": oc(rows),
        # pairwise only: the share of parsed per-order verdicts that prefer A (pointwise has no position)
        "a_preference": round(sum(sum(r["a"]) for r in rows) / max(1, sum(sum(r["format"]) for r in rows)), 4)
        if formulation != "pointwise-trace"
        else "",
        "criteria_exact": round(sum(sum(r["crit"]) for r in rows) / (2 * n), 4),
        "oc_held_out_operator": oc(held),
        "oc_unseen_combination": oc([r for r in rows if r not in held]),
        "oc_adversarial": oc([r for r in rows if r["pair"]["negative_kind"] == "adversarial"]),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "samples": [texts[0], texts[1]],
    }


args_held_out = "ellipsis"


def resume_problem(state: dict[str, Any], args: argparse.Namespace, path: Path) -> str | None:
    """Why a saved state cannot be resumed with ``args`` (None when it can): it was trained with another
    ``--lr`` or ``--loraplus-ratio`` (states saved before these were recorded: plain LoRA, lr unchecked)."""
    saved = {"lr": state.get("lr", args.lr), "loraplus_ratio": state.get("loraplus_ratio", 0.0)}
    changed = [option(k, saved[k]) for k in saved if saved[k] != getattr(args, k)]
    if not changed:
        return None
    return f"--resume: {path} was trained with {', '.join(changed)}; resume with the same settings or write to another --state-dir"


def run_one(formulation: str, args: argparse.Namespace, train: list[dict], test: list[dict], val: list[dict]) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from persrm_lib.models.registry import load_model

    torch.manual_seed(args.seed)
    model, tokenizer = load_model(args.model, dtype=torch.float32, device=args.device)
    n_layers = model.config.num_hidden_layers
    if args.lora_layers > n_layers:
        raise SystemExit(f"--lora-layers {args.lora_layers}: {args.model} has {n_layers} layers")
    top = list(range(n_layers - args.lora_layers, n_layers)) if args.lora_layers else None
    model = get_peft_model(
        model,
        LoraConfig(
            r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            layers_to_transform=top,
        ),
    )  # fmt: skip
    end = tokenizer.eos_token
    examples = []
    for pair in train:
        for prompt, completion in examples_for(formulation, pair, tokenizer):
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c_ids = tokenizer(completion + end, add_special_tokens=False)["input_ids"]
            examples.append((p_ids, c_ids))
    random.Random(args.seed).shuffle(examples)
    mean_len = sum(len(p) + len(c) for p, c in examples) / len(examples)
    print(f"[{formulation}] {len(examples)} examples, mean {mean_len:.0f} tokens", flush=True)
    if args.loraplus_ratio:  # LoRA+ (Hayou et al. 2024): B learns loraplus_ratio times faster than A
        from peft.optimizers import create_loraplus_optimizer

        optimizer = create_loraplus_optimizer(
            model, torch.optim.AdamW, lr=args.lr, loraplus_lr_ratio=args.loraplus_ratio, weight_decay=0.0
        )
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    peak_lrs = [group["lr"] for group in optimizer.param_groups]  # each group's rate after the warm-up
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses: list[float] = []
    train_seconds = 0.0
    state_path = args.state_dir / f"{formulation}.pt"
    device_name = (
        torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu, {args.threads} threads"
    )
    first_step = 1
    if args.resume and state_path.is_file():
        from peft import set_peft_model_state_dict

        state = torch.load(state_path, weights_only=False, map_location=args.device)
        problem = resume_problem(state, args, state_path)
        if problem:
            raise SystemExit(problem)
        set_peft_model_state_dict(model, state["lora"])
        optimizer.load_state_dict(state["optimizer"])
        losses, train_seconds, first_step = state["losses"], state["train_seconds"], state["step"] + 1
        print(f"[{formulation}] resumed from {state_path} after step {state['step']}", flush=True)

    def save_state(step: int) -> None:
        from peft import get_peft_model_state_dict

        args.state_dir.mkdir(parents=True, exist_ok=True)
        partial = state_path.with_suffix(".partial")
        torch.save(
            {"step": step, "lora": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
             "losses": losses, "train_seconds": train_seconds, "lr": args.lr, "loraplus_ratio": args.loraplus_ratio},
            partial,
        )  # fmt: skip
        partial.replace(state_path)

    budgets = [generation_budget(formulation, pairs, tokenizer) for pairs in (test, val)]  # once per run

    def checkpoint(step: int) -> None:
        result = evaluate(formulation, model, tokenizer, test, budgets[0], args.eval_batch)
        samples = result.pop("samples")
        in_dist = evaluate(formulation, model, tokenizer, val, budgets[1], args.eval_batch)
        result["val_order_consistent"] = in_dist["order_consistent"]
        result["val_criteria_exact"] = in_dist["criteria_exact"]
        result["eval_seconds"] = round(result["eval_seconds"] + in_dist["eval_seconds"], 1)
        row = {
            "formulation": formulation, "step": step, "examples": step * args.batch,
            "train_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4) if losses else "",
            **result, "train_seconds": round(train_seconds, 1), "lr": args.lr, "rank": args.rank,
            "batch": args.batch, "passage_words": args.words, "seed": args.seed, "device": device_name,
            "lora_layers": args.lora_layers, "loraplus_ratio": args.loraplus_ratio,
        }  # fmt: skip
        header = read_header(args.out)  # an earlier file may lack a later column (out_columns_problem allowed it)
        new = header is None
        with args.out.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or FIELDS, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(json.dumps(row), flush=True)
        print("  sample:", json.dumps(samples[0][:300]), flush=True)

    if args.base and first_step == 1:
        checkpoint(0)
    model.train()
    for step in range(first_step, args.steps + 1):
        t0 = time.perf_counter()
        batch = [examples[((step - 1) * args.batch + i) % len(examples)] for i in range(args.batch)]
        width = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (p, c) in enumerate(batch):
            seq = p + c
            ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, len(p) : len(seq)] = torch.tensor(c)
            mask[row, : len(seq)] = 1
        for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
            group["lr"] = peak * min(1.0, step / 20)
        loss = model(
            input_ids=ids.to(args.device), attention_mask=mask.to(args.device), labels=labels.to(args.device)
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        train_seconds += time.perf_counter() - t0
        if step % 50 == 0:
            print(
                f"[{formulation}] step {step} loss {sum(losses[-50:]) / 50:.4f} ({train_seconds / step:.2f} s/step)",
                flush=True,
            )
        if step in args.eval_at or step == args.steps:
            save_state(step)
            checkpoint(step)
            model.train()


def curve_label(row: Any) -> str:
    """A curve's name in tables and legends: the formulation, and its learning rate, LoRA rank, adapted
    layers, LoRA+ ratio and passage length where they differ from the defaults (lr 3e-4, rank 16, all
    layers, plain LoRA, 20 words)."""
    extra = [
        f"lr {row.lr:g}" if row.lr != 3e-4 else "",
        f"rank {row.rank}" if row.rank != 16 else "",
        f"top {row.lora_layers} layers" if row.lora_layers else "",
        f"LoRA+ ratio {row.loraplus_ratio:g}" if row.loraplus_ratio else "",
        f"{row.passage_words} words" if row.passage_words != 20 else "",
    ]
    extra = [e for e in extra if e]
    return row.formulation + (f" ({', '.join(extra)})" if extra else "")


def report(csv_paths: list[Path], figure: Path | None = None) -> str:
    """The curves as a markdown table (one row per curve and checkpoint), and optionally a figure of
    held-out and in-distribution order-consistent accuracy against training examples.

    Args:
        csv_paths: CSVs written by this script (one or more; rows of one curve may span files).
        figure: a PNG to draw, or None.
    """
    import pandas as pd

    frame = pd.concat([pd.read_csv(path) for path in csv_paths], ignore_index=True)
    for name, value in LATER_FIELDS.items():  # files written before the column existed
        frame[name] = frame[name].fillna(value).astype(type(value)) if name in frame else value
    # rows written before a_preference was left empty for pointwise rows held the share of decided pairs
    frame.loc[frame["formulation"] == "pointwise-trace", "a_preference"] = float("nan")
    frame.insert(0, "curve", [curve_label(row) for row in frame.itertuples(index=False)])
    columns = ["curve", "step", "examples", "train_loss", "format", "order_consistent", "a_preference",
               "criteria_exact", "oc_held_out_operator", "oc_unseen_combination", "oc_adversarial",
               "val_order_consistent", "val_criteria_exact", "train_seconds"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append(
            "| "
            + " | ".join("" if pd.isna(v) else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row)
            + " |"
        )
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9.5, 4.2))
        for name, rows in frame.groupby("curve", sort=False):
            line = ax.plot(rows["examples"], rows["order_consistent"], marker="o", label=f"{name}, held-out personas")
            ax.plot(rows["examples"], rows["val_order_consistent"], marker="s", ls="--", color=line[0].get_color(),
                    label=f"{name}, taught personas")  # fmt: skip
        ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance, pointwise (one verdict per pair)")
        ax.axhline(0.25, color="grey", ls=":", lw=1, label="chance, pairwise (right in both orders)")
        devices = ", ".join(sorted(frame["device"].dropna().unique())) if "device" in frame else "cpu"
        ax.set(xlabel="training examples", ylabel="order-consistent accuracy", ylim=(0, 1),
               title=f"SmolLM2-135M + LoRA on the persona benchmark ({devices})")  # fmt: skip
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(figure, dpi=120)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global args_held_out
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "report":  # report CSV... [FIGURE.png]: the table (and figure) of finished curves
        paths = [Path(a) for a in argv[1:]]
        figure = paths.pop() if paths and paths[-1].suffix == ".png" else None
        if not paths or any(path.suffix != ".csv" for path in paths):
            print("usage: persona_learning_curve.py report CSV [CSV...] [FIGURE.png]", file=sys.stderr)
            return 2
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            print(f"persona_learning_curve.py report: no such CSV: {', '.join(missing)}", file=sys.stderr)
            return 2
        print(report(paths, figure))
        return 0
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args_held_out = args.held_out_operator
    train, test, val = load_pairs(args)
    print(f"{len(train)} training pairs, {len(test)} held-out pairs, {len(val)} in-distribution pairs", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for formulation in args.formulation:
        run_one(formulation, args, train, test, val)
    return 0


if __name__ == "__main__":
    sys.exit(main())
