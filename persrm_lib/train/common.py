"""What both training stages (:mod:`persrm_lib.train.sft`, :mod:`persrm_lib.train.grpo`) share: the
result record, the stage-independent TRL settings (processes, precision, seeds, logging), the ending."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import Profile
from ..data.evidence import evidence_kind
from .adapters import save_adapter, training_info


@dataclass
class TrainResult:
    """What a training stage produced."""

    stage: str  # "sft", "rft" or another GRPO stage ("rft_from_base")
    backend: str  # "unsloth" or "transformers"
    steps: int  # optimiser steps taken
    final_loss: float  # training loss of the last logged step
    seconds: float  # wall time of trainer.train()
    adapter_dir: Path
    log_path: Path
    log: list[dict[str, Any]] = field(default_factory=list)  # the rows of log.csv
    completions_path: Path | None = None  # GRPO only
    examples: int = 0  # training examples (traces or pairs)
    model: Any = field(default=None, repr=False)  # the trained PEFT model, in memory
    tokenizer: Any = field(default=None, repr=False)


def world_size() -> int:
    """Training processes (``WORLD_SIZE`` under ``accelerate launch``; 1 otherwise)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def process_index() -> int:
    """This process's rank (``RANK``; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def common_args(profile: Profile, output_dir: Path, backend: str) -> dict[str, Any]:
    """The TRL/transformers arguments both stages use: seeds, no checkpoints, no reporting,
    deterministic data loading, and the device's precision (CPU: float32, as TRL configs default to
    bf16 and fail on CPU unless told; CUDA: bf16 where supported, else fp16)."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        # Unsloth applies its own gradient checkpointing in get_peft_model.
        precision = {"bf16": bf16, "fp16": not bf16, "gradient_checkpointing": backend != "unsloth"}
    else:
        precision = {"use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": False}
    return {
        "output_dir": str(output_dir),
        "seed": profile.seed,
        "data_seed": profile.seed,
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "steps",
        "dataloader_num_workers": 0,  # deterministic, single-process data loading
        "disable_tqdm": True,
        "full_determinism": not torch.cuda.is_available(),
        **precision,
    }


def quiet(trainer: Any) -> Any:
    """Drop the trainer's raw dict printer (tqdm is off): the training log prints a line for about 20 of the logged steps."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def train_and_save(
    trainer: Any,
    tokenizer: Any,
    profile: Profile,
    run: Path,
    stage: str,
    backend: str,
    log: Any,
    data: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any] | None = None,
    completions_path: Path | None = None,
) -> TrainResult:
    """Run ``trainer.train()``, save the adapter to ``<run>/<stage>/adapter`` with its training info
    (:func:`persrm_lib.train.adapters.training_info` of ``data``'s evidence setting, plus ``info``),
    and return the :class:`TrainResult` (``final_loss``: the last logged loss, NaN without one)."""
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    steps = int(trainer.state.global_step)
    out = runfiles.adapter_dir(run, stage)
    saved = training_info(profile, stage, backend, steps, evidence=evidence_kind(data)) | dict(info or {})
    save_adapter(trainer, tokenizer, out, saved)
    losses = [r["loss"] for r in log.rows if r.get("loss") not in ("", None)]
    return TrainResult(
        stage=stage,
        backend=backend,
        steps=steps,
        final_loss=float(losses[-1]) if losses else float("nan"),
        seconds=seconds,
        adapter_dir=out,
        log_path=log.path,
        log=log.rows,
        completions_path=completions_path,
        examples=len(data),
        model=trainer.model,
        tokenizer=tokenizer,
    )
