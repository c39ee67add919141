"""Run-folder fixtures shared by the regression and publish tests."""

from __future__ import annotations

NOTEBOOK_STEMS = (
    "01_synthesize",
    "02_filter_audit",
    "03_sft",
    "04_rft_grpo",
    "05_evaluate",
    "06_training_dynamics",
    "07_behavior_analysis",
)


def write_executed(run, profile: str, stems=NOTEBOOK_STEMS, seconds: float = 1.5) -> None:
    """Executed-notebook stubs carrying papermill's metadata, as the runner leaves them."""
    import json

    folder = run / "executed"
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        meta = {"papermill": {"parameters": {"profile": profile, "run_dir": str(run)}, "duration": seconds}}
        (folder / f"{stem}.ipynb").write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4}))
