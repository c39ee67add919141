"""What every notebook calls at its start and end: the profile, the run folder, figures, metrics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..core.config import Profile, get_profile, set_threads
from ..core.jsonl import read_json, write_json_atomic
from ..core.paths import FIGURES_DIR
from ..core.runlock import acquire
from ..models.backend import select_backend
from .settings import read_overrides

METRICS_DIR = "metrics"
FIGURES_SUBDIR = "figures"
PUBLISHED_PROFILES = ("cpu",)  # only the reference run writes into the tracked figures/ folder


def start(profile_name: str, run_dir: str | Path) -> tuple[Profile, Path]:
    """Resolve the profile with the run folder's stored overrides, take the folder's lock while this
    kernel lives (:class:`RunFolderBusyError` when another process writes to it), pin threads, seed
    everything, create the run folder."""
    profile = get_profile(profile_name, read_overrides(run_dir))
    acquire(run_dir, f"a notebook kernel of profile {profile_name}")  # released when the kernel exits
    if select_backend() == "unsloth":
        import unsloth  # noqa: F401 -- Unsloth patches transformers and TRL, so it is imported first

    from transformers import set_seed

    set_threads(profile.num_threads)
    set_seed(profile.seed)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    return profile, run


def save_fig(fig: Any, name: str, run_dir: str | Path, profile: str) -> Path:
    """Save ``fig`` as ``<run>/figures/<name>.png`` (fixed dpi, no timestamp metadata); a run of the
    reference profile without overrides also copies it to ``figures/``."""
    out = Path(run_dir) / FIGURES_SUBDIR / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight", metadata={"Software": None})
    if profile in PUBLISHED_PROFILES and not read_overrides(run_dir):
        FIGURES_DIR.mkdir(exist_ok=True)
        shutil.copyfile(out, FIGURES_DIR / out.name)
    return out


def write_metrics(run_dir: str | Path, notebook: str, metrics: dict[str, Any]) -> Path:
    """Write the notebook's headline metrics to ``<run>/metrics/<notebook>.json`` (sorted keys)."""
    return write_json_atomic(metrics, Path(run_dir) / METRICS_DIR / f"{notebook}.json", sort_keys=True)


def read_metrics(run_dir: str | Path, notebook: str) -> dict[str, Any]:
    """The headline metrics a notebook wrote (:func:`write_metrics`); FileNotFoundError naming the notebook
    to run when they are absent."""
    path = Path(run_dir) / METRICS_DIR / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run notebook {notebook} first")
    return read_json(path)


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def collect(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every notebook's metrics in a run folder, flattened."""
    folder = Path(run_dir) / METRICS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: the run folder holds no metrics")
    return {p.stem: flatten(read_json(p)) for p in sorted(folder.glob("*.json"))}
