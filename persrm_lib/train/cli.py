"""Command-line entry point of the two training stages; the same code the notebooks call.

    python -m persrm_lib.train sft  --profile smoke --run-dir runs/smoke [--set sft.max_steps=3 ...]
    python -m persrm_lib.train grpo --profile smoke --run-dir runs/smoke [--set grpo.beta=0.01 ...]
        [--backend auto|unsloth|transformers] [--summary SUMMARY.json]

Beyond one GPU: README, "The `paper` profile on GPUs". Exit status 2: an input refused before the
model loads; 1: a training that failed after it began (``SUMMARY.partial.json`` names its log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.cli import Parser, fail, files_problem, partial_path
from ..core.config import PROFILES, Profile, get_profile, set_threads
from ..core.jsonl import write_json_atomic
from ..core.runlock import RunFolderBusyError, run_lock
from ..models.backend import BACKENDS, BackendUnavailableError, select_backend
from ..teachers.swap import SwapError
from .adapters import MODEL_INPUT_ERRORS, AdapterReplaceError
from .common import process_index
from .data import TrainingDataError

STAGES = ("sft", "grpo")


def parse_set(items: Sequence[str] | None) -> dict[str, str]:
    """``["sft.max_steps=3", "seed=1"]`` -> ``{"sft.max_steps": "3", "seed": "1"}`` (``ValueError``:
    an item without ``=`` or with an empty key)."""
    overrides: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set sft.max_steps=3")
        overrides[key.strip()] = value.strip()
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m persrm_lib.train", description="Train the PersRM-R1 reward model: SFT, then GRPO.")
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
        "--backend",
        choices=BACKENDS,
        help="training backend (default: $PERSRM_BACKEND, else auto: Unsloth on CUDA when installed)",
    )
    parser.add_argument("--summary", type=Path, help="also write the printed summary to this JSON file")
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


def resolve_backend(requested: str | None) -> str:
    """The backend that will train: ``--backend`` (or ``$PERSRM_BACKEND``) resolved by
    :func:`persrm_lib.models.backend.select_backend`; a choice that cannot run exits with status 2."""
    try:
        return select_backend(requested)
    except (BackendUnavailableError, ValueError) as exc:
        build_parser().error(str(exc))
        raise  # unreachable: error() exits


def step_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """From a stage's log rows (``TrainResult.log``): ``step_seconds`` (each row's
    ``seconds_per_step`` times the steps it covers), ``seconds_per_step``, ``num_tokens`` (cumulative,
    at the last row), ``tokens_per_second``; for GRPO also ``mean_reward`` (mean over rows of the
    -1/0/+1 reward) and ``format_rate`` (1 - mean share of format violations), else None."""
    import pandas as pd

    columns = ["step", "seconds_per_step", "num_tokens", "reward", "format_violation"]
    log = pd.DataFrame(list(rows)).reindex(columns=columns).apply(pd.to_numeric, errors="coerce")
    steps = log["step"].fillna(0).astype(int)
    step_seconds = float((log["seconds_per_step"] * (steps - steps.shift(fill_value=0)).clip(lower=1)).sum())
    last_step = int(steps.iloc[-1]) if len(steps) else 0
    tokens, rewards, violations = (log[c].dropna() for c in ("num_tokens", "reward", "format_violation"))
    return {
        "step_seconds": round(step_seconds, 3),
        "seconds_per_step": round(step_seconds / last_step, 4) if last_step and step_seconds else None,
        "num_tokens": float(tokens.iloc[-1]) if len(tokens) else None,
        "tokens_per_second": round(tokens.iloc[-1] / step_seconds, 1) if len(tokens) and step_seconds else None,
        "mean_reward": round(float(rewards.mean()), 4) if len(rewards) else None,
        "format_rate": round(1 - float(violations.mean()), 4) if len(violations) else None,
    }


# refused input, found before training starts (exit 2)
INPUT_ERRORS = (*MODEL_INPUT_ERRORS, RunFolderBusyError, TrainingDataError, SwapError, AdapterReplaceError)


def main(argv: Sequence[str] | None = None) -> int:
    args, profile = parse_args(argv)
    backend = resolve_backend(args.backend)
    if args.run_dir.exists() and not args.run_dir.is_dir():
        return fail(f"--run-dir {args.run_dir}: is a file, not a run folder")
    if args.sft_adapter is not None and not args.sft_adapter.is_dir():
        return fail(f"--sft-adapter: {args.sft_adapter} is not a folder")
    problem = files_problem({"--traces": args.traces, "--pairs": args.pairs}, "--summary", args.summary)
    if problem is not None:
        return fail(problem)
    if args.stage == "grpo":
        from .grpo import check_grpo_profile

        try:
            check_grpo_profile(profile)  # the batch against the number of processes
        except ValueError as exc:
            return fail(str(exc))
    if backend == "unsloth":
        import unsloth  # noqa: F401 -- first, so that it patches transformers, PEFT and TRL
    import torch
    from transformers import set_seed

    from .grpo import train_grpo
    from .sft import train_sft

    command = " ".join(["python -m persrm_lib.train", *(sys.argv[1:] if argv is None else argv)])
    stage = "sft" if args.stage == "sft" else "rft"
    cuda = torch.cuda.is_available()
    try:
        with run_lock(args.run_dir, command):  # one writer per run folder, for the whole command
            set_threads(profile.num_threads)
            set_seed(profile.seed)
            if "LOCAL_RANK" in os.environ and cuda:  # under accelerate launch
                torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # before any model is loaded
            if args.stage == "sft":
                result = train_sft(profile, args.run_dir, traces=args.traces, backend=backend)
            else:
                result = train_grpo(
                    profile,
                    args.run_dir,
                    pairs=args.pairs,
                    sft_adapter=args.sft_adapter,
                    from_sft=not args.no_sft,
                    backend=backend,
                )
    except INPUT_ERRORS as exc:
        return fail(str(exc))
    except Exception as exc:  # after training began: what it finished is in the log, step by step
        log = runfiles.log_path(args.run_dir, stage)
        steps = max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0
        message = (
            f"{args.stage} failed after it began ({type(exc).__name__}: {exc}); {steps} logged step(s) are in {log}"
        )
        if args.summary is not None and process_index() == 0:
            partial = {"stage": stage, "partial": True, "error": f"{type(exc).__name__}: {exc}", "log": str(log)}
            where = write_json_atomic(partial | {"logged_steps": steps}, partial_path(args.summary))
            message += f"; the partial summary is in {where}"
        return fail(message, status=1)
    summary: dict[str, Any] = {
        "stage": result.stage,
        "backend": result.backend,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "seconds": round(result.seconds, 2),
        "adapter_dir": str(result.adapter_dir),
        "log": str(result.log_path),
        "profile": profile.name,
        "examples": result.examples,
        **step_stats(result.log),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
    }
    if process_index() == 0:
        print(json.dumps(summary, indent=2))
        if args.summary:
            write_json_atomic(summary, args.summary)
    return 0
