"""What an SFT step costs with the language-model head run only where the loss is, against TRL's default.

Times optimiser steps of notebook 03's trainer (:func:`persrm_lib.train.sft.sft_trainer`, the
transformers backend) on a run's faithful traces, two ways, each on a fresh LoRA model with the same
seed and data order:

- ``library``: what the project trains with: TRL's ``nll`` loss over the logits that
  :class:`persrm_lib.train.sft.CompletionLogits` keeps (the completion tokens and the one before);
- ``trl-chunked``: TRL 1.14's default ``loss_type="chunked_nll"``, which rounds the scored tokens up
  to chunks of 256 and recomputes the head in the backward pass (gradient checkpointing), so on a
  short example it projects every position onto the vocabulary twice.

It prints the median and mean seconds per step after ``--warmup`` steps (between the trainer's
``on_step_begin`` and ``on_step_end``: forward, backward and optimiser step; collating the batch,
where ``CompletionLogits`` cuts two tensors, comes before and is not timed), the mean tokens per
example, and the first logged losses of both (the same sum over the same tokens: they agree to
float rounding).

    python -m persrm_lib.run --profile smoke --run-dir runs/smoke --only 01 02   # traces first
    OMP_NUM_THREADS=2 python benchmarks/sft_step_cost.py --run-dir runs/smoke --steps 30

Every argument is checked before a model loads: a bad one exits with status 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WAYS = ("library", "trl-chunked")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run folder holding data/traces_faithful.jsonl")
    parser.add_argument("--profile", default="smoke", help="the profile whose SFT settings apply (default smoke)")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per way")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timings")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.steps <= args.warmup or args.warmup < 0:
        parser.error(f"--steps ({args.steps}) must be above --warmup ({args.warmup}), and --warmup at least 0")
    from persrm_lib.core import runfiles
    from persrm_lib.core.config import PROFILES

    if args.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}, got {args.profile!r}")
    traces = runfiles.faithful_traces_path(args.run_dir)
    if not traces.is_file():
        parser.error(f"--run-dir {args.run_dir}: no {traces.name} there (run notebooks 01 and 02 first)")
    return args


def time_way(way: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per step and the logged losses of ``args.steps`` steps of one way."""
    import torch
    from transformers import TrainerCallback

    from persrm_lib.core import runfiles
    from persrm_lib.core.config import get_profile
    from persrm_lib.models.backend import load_for_training
    from persrm_lib.train.data import check_traces
    from persrm_lib.train.sft import CompletionLogits, sft_trainer

    torch.set_num_threads(args.threads)
    profile = get_profile(args.profile, {"sft.max_steps": args.steps, "sft.logging_steps": 1})
    traces = check_traces(runfiles.faithful_traces_path(args.run_dir))
    model, tokenizer, backend = load_for_training(profile, "transformers")

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.losses: list[float] = []
            self.started = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.seconds.append(time.perf_counter() - self.started)

        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="persrm-sft-cost-") as folder:
        library = way == "library"
        trainer = sft_trainer(profile, Path(folder), traces, model, tokenizer, backend, [clock], library)
        assert isinstance(trainer.data_collator, CompletionLogits) == library
        trainer.train()
        tokens = [len(row["input_ids"]) for row in trainer.train_dataset]
    timed = clock.seconds[args.warmup :]
    return {
        "way": way,
        "median": statistics.median(timed),
        "mean": statistics.mean(timed),
        "tokens": sum(tokens) / len(tokens),
        "losses": clock.losses[:3],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    rows = [time_way(way, args) for way in dict.fromkeys(args.ways)]  # each way once, in the order given
    print(f"SFT steps of profile {args.profile}, {args.steps} steps each (first {args.warmup} not timed), "
          f"{args.threads} thread(s)")  # fmt: skip
    print("| way | s/step (median) | s/step (mean) | tokens/example | first losses |")
    print("|---|---|---|---|---|")
    for row in rows:
        losses = ", ".join(f"{loss:.4f}" for loss in row["losses"])
        print(f"| {row['way']} | {row['median']:.3f} | {row['mean']:.3f} | {row['tokens']:.0f} | {losses} |")
    median = {row["way"]: row["median"] for row in rows}
    if len(median) == 2:
        print(f"library / trl-chunked: {median['library'] / median['trl-chunked']:.2f} of the step time (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
