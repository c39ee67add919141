"""The run folder's layout (docs/design.md, "Run-folder layout"): the contract between notebooks. Each
notebook reads what earlier notebooks wrote here and writes its own outputs; none relies on kernel state.
"""

from __future__ import annotations

from pathlib import Path


def settings_path(run: Path) -> Path:
    return Path(run) / "settings.json"


def data_dir(run: Path) -> Path:
    return Path(run) / "data"


def documents_path(run: Path) -> Path:
    return data_dir(run) / "documents.jsonl"


def pairs_path(run: Path, split: str) -> Path:
    return data_dir(run) / "pairs" / f"{split}.jsonl"


def pairs_hf_dir(run: Path, split: str) -> Path:
    return data_dir(run) / "pairs_hf" / split


def traces_path(run: Path) -> Path:
    return data_dir(run) / "traces.jsonl"


def faithful_traces_path(run: Path) -> Path:
    return data_dir(run) / "traces_faithful.jsonl"


def hinted_traces_path(run: Path) -> Path:
    return data_dir(run) / "traces_hinted.jsonl"


def stage_dir(run: Path, stage: str) -> Path:
    """``sft``, ``rft``, ``eval`` or ``behavior``."""
    return Path(run) / stage


def adapter_dir(run: Path, stage: str) -> Path:
    return stage_dir(run, stage) / "adapter"


def log_path(run: Path, stage: str) -> Path:
    return stage_dir(run, stage) / "log.csv"


def completions_path(run: Path, stage: str = "rft") -> Path:
    """GRPO samples of ``rft`` or ``rft_from_base``."""
    return stage_dir(run, stage) / "completions.jsonl"


def eval_dir(run: Path) -> Path:
    return stage_dir(run, "eval")


PER_PAIR_FILE = "per_pair.csv"  # in 05_evaluate's folder


def published_per_pair_path(results_dir: Path) -> Path:
    """Where :mod:`persrm_lib.run.publish` puts ``eval/per_pair.csv`` in a results folder."""
    return Path(results_dir) / "tables" / f"eval_{PER_PAIR_FILE}"


def per_pair_path(run: Path) -> Path:
    """One row per judge, pair and exemplar count."""
    return eval_dir(run) / PER_PAIR_FILE


def eval_completions_path(run: Path, stage: str) -> Path:
    return eval_dir(run) / "completions" / f"{stage}.jsonl"
