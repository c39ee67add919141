"""Command-line entry point of the two training stages; the same code the notebooks call.

    python -m persrm_lib.train sft  --profile smoke --run-dir runs/smoke [--set sft.max_steps=3 ...]
    python -m persrm_lib.train grpo --profile smoke --run-dir runs/smoke [--set grpo.beta=0.01 ...]
        [--backend auto|unsloth|transformers] [--summary SUMMARY.json]

Beyond one GPU, launch it with ``accelerate launch`` (README, "The `paper` profile on GPUs"); the
profile's batch sizes are global and Unsloth runs on one GPU only, hence ``--backend transformers``.

Exit status 2 and one line: an argument or input refused before the model loads (a setting out
of range, a missing trace or pair file, an adapter folder the training may not replace, a busy
run folder, an Unsloth backend that cannot run...). Exit status 1: a training that failed after it
began; the steps it finished are in ``<stage>/log.csv`` and ``SUMMARY.partial.json`` names them.
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
from ..core.cli import Parser, bad_input, fail, files_problem, partial_path
from ..core.config import PROFILES, Profile, get_profile, set_threads
from ..core.jsonl import write_json_atomic
from ..core.runlock import RunFolderBusyError, run_lock
from ..models.backend import BACKENDS, BackendUnavailableError, import_unsloth_first, select_backend
from ..teachers.swap import SwapError
from .adapters import AdapterReplaceError
from .common import process_index
from .data import TrainingDataError

STAGES = ("sft", "grpo")


def parse_set(items: Sequence[str] | None) -> dict[str, str]:
    """``["sft.max_steps=3", "seed=1"]`` -> ``{"sft.max_steps": "3", "seed": "1"}``.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
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


def _bind_local_gpu() -> None:
    """Under ``accelerate launch``, put each process on its own GPU before any model is loaded."""
    if "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def resolve_backend(requested: str | None) -> str:
    """The backend that will train: ``--backend`` (or ``$PERSRM_BACKEND``) resolved by
    :func:`persrm_lib.models.backend.select_backend`; a choice that cannot run exits with status 2."""
    try:
        return select_backend(requested)
    except (BackendUnavailableError, ValueError) as exc:
        build_parser().error(str(exc))
        raise  # unreachable: error() exits


def _numbers(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)]


def step_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Throughput and outcome figures from a stage's log rows (``TrainResult.log``).

    Returns:
        ``step_seconds`` (time in optimiser steps, from each row's ``seconds_per_step`` times the
        steps it covers), ``seconds_per_step``, ``num_tokens`` (the trainer's cumulative token count
        at the last row), ``tokens_per_second``; for GRPO rows also ``mean_reward`` (mean over rows of
        the -1/0/+1 reward) and ``format_rate`` (1 - mean share of format violations), else None.
    """
    step_seconds, previous = 0.0, 0
    for row in rows:
        step = int(row.get("step") or 0)
        per_step = row.get("seconds_per_step")
        if isinstance(per_step, int | float):
            step_seconds += float(per_step) * max(1, step - previous)
        previous = step
    tokens = _numbers(rows, "num_tokens")
    rewards = _numbers(rows, "reward")
    violations = _numbers(rows, "format_violation")
    steps = previous
    return {
        "step_seconds": round(step_seconds, 3),
        "seconds_per_step": round(step_seconds / steps, 4) if steps and step_seconds else None,
        "num_tokens": tokens[-1] if tokens else None,
        "tokens_per_second": round(tokens[-1] / step_seconds, 1) if tokens and step_seconds else None,
        "mean_reward": round(sum(rewards) / len(rewards), 4) if rewards else None,
        "format_rate": round(1 - sum(violations) / len(violations), 4) if violations else None,
    }


def device_stats() -> dict[str, Any]:
    """``device`` (the CUDA device's name, or ``cpu``) and ``peak_gpu_memory_mb``
    (``torch.cuda.max_memory_allocated`` of this process in MiB; None on CPU)."""
    import torch

    if not torch.cuda.is_available():
        return {"device": "cpu", "peak_gpu_memory_mb": None}
    return {
        "device": torch.cuda.get_device_name(),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
    }


# refused input, found before training starts (exit 2)
INPUT_ERRORS = bad_input(RunFolderBusyError, TrainingDataError, SwapError, AdapterReplaceError)


def check_arguments(args: argparse.Namespace) -> str | None:
    """Why the command cannot run, before anything is read or loaded; None when it can."""
    if args.run_dir.exists() and not args.run_dir.is_dir():
        return f"--run-dir {args.run_dir}: is a file, not a run folder"
    if args.sft_adapter is not None and not args.sft_adapter.is_dir():
        return f"--sft-adapter: {args.sft_adapter} is not a folder"
    return files_problem({"--traces": args.traces, "--pairs": args.pairs}, "--summary", args.summary)


def main(argv: Sequence[str] | None = None) -> int:
    args, profile = parse_args(argv)
    backend = resolve_backend(args.backend)
    problem = check_arguments(args)
    if problem is not None:
        return fail(problem)
    if args.stage == "grpo":
        from .grpo import check_grpo_profile

        try:
            check_grpo_profile(profile)  # the batch against the number of processes
        except ValueError as exc:
            return fail(str(exc))
    if backend == "unsloth":
        import_unsloth_first()  # before transformers, PEFT and TRL, so that it patches them all
    from transformers import set_seed

    from .grpo import train_grpo
    from .sft import train_sft

    command = " ".join(["python -m persrm_lib.train", *(sys.argv[1:] if argv is None else argv)])
    stage = "sft" if args.stage == "sft" else "rft"
    try:
        with run_lock(args.run_dir, command):  # one writer per run folder, for the whole command
            set_threads(profile.num_threads)
            set_seed(profile.seed)
            _bind_local_gpu()
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
        **device_stats(),
    }
    if process_index() == 0:
        print(json.dumps(summary, indent=2))
        if args.summary:
            write_json_atomic(summary, args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
