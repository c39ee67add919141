"""Command-line entry point of the two training stages; the same code the notebooks call.

    python -m persrm_lib.train sft  --profile smoke --run-dir runs/smoke [--set sft.max_steps=3 ...]
    python -m persrm_lib.train grpo --profile smoke --run-dir runs/smoke [--set grpo.beta=0.01 ...]

Beyond one GPU, launch it with accelerate (from the repository root, so that the configs' relative
paths resolve), e.g. DeepSpeed ZeRO-2 on 8 GPUs::

    PERSRM_BACKEND=transformers accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml \\
        --num_processes 8 -m persrm_lib.train sft --profile paper --run-dir runs/paper

The profile's batch sizes are global: each process takes its share (``grpo.batch_size`` must
divide by the number of processes). Unsloth runs on one GPU only, hence ``PERSRM_BACKEND``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.config import PROFILES, Profile, get_profile, set_threads

STAGES = ("sft", "grpo")


def parse_set(items: Sequence[str] | None) -> dict[str, str]:
    """``["sft.max_steps=3", "seed=1"]`` -> ``{"sft.max_steps": "3", "seed": "1"}``.

    Raises:
        ValueError: an item without ``=`` or with an empty key.

    >>> parse_set(["grpo.beta=0.01"])
    {'grpo.beta': '0.01'}
    """
    overrides: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set sft.max_steps=3")
        overrides[key.strip()] = value.strip()
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m persrm_lib.train", description="Train the PersRM-R1 reward model: SFT, then GRPO."
    )
    parser.add_argument("stage", choices=STAGES, help="sft: on faithful traces; grpo: from the SFT adapter")
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES), help="named profile")
    parser.add_argument("--run-dir", required=True, type=Path, help="the run folder (inputs and outputs)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile setting (repeatable)"
    )
    parser.add_argument("--traces", type=Path, help="sft: trace file (default: the run's faithful traces)")
    parser.add_argument("--pairs", type=Path, help="grpo: pair file (default: the run's train pairs)")
    parser.add_argument("--sft-adapter", type=Path, help="grpo: adapter to start from (default: the run's SFT adapter)")
    parser.add_argument("--no-sft", action="store_true", help="grpo: start from fresh LoRA (RFT-only ablation)")
    parser.add_argument(
        "--backend", choices=("auto", "unsloth", "transformers"), help="default: $PERSRM_BACKEND or auto"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Profile]:
    """Parse the command line and resolve the profile; bad input exits with status 2 and a message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stage == "sft" and (args.pairs or args.sft_adapter or args.no_sft):
        parser.error("--pairs, --sft-adapter and --no-sft apply to the grpo stage only")
    if args.stage == "grpo" and args.traces:
        parser.error("--traces applies to the sft stage only")
    try:
        profile = get_profile(args.profile, parse_set(args.set))
    except KeyError as exc:  # an unknown setting name
        parser.error(f"--set: {exc.args[0]}")
    except ValueError as exc:  # a malformed item, a value of the wrong type, an invalid profile
        parser.error(str(exc))
    return args, profile


def _bind_local_gpu() -> None:
    """Under ``accelerate launch``, put each process on its own GPU before any model is loaded."""
    if "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def main(argv: Sequence[str] | None = None) -> int:
    args, profile = parse_args(argv)
    from transformers import set_seed

    from . import training

    set_threads(profile.num_threads)
    set_seed(profile.seed)
    _bind_local_gpu()
    backend = None if args.backend in (None, "auto") else args.backend
    if args.stage == "sft":
        result = training.train_sft(profile, args.run_dir, traces=args.traces, backend=backend)
    else:
        result = training.train_grpo(
            profile,
            args.run_dir,
            pairs=args.pairs,
            sft_adapter=args.sft_adapter,
            from_sft=not args.no_sft,
            backend=backend,
        )
    summary: dict[str, Any] = {
        "stage": result.stage,
        "backend": result.backend,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "seconds": round(result.seconds, 2),
        "adapter_dir": str(result.adapter_dir),
        "log": str(result.log_path),
    }
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
