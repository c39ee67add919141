"""Where things live: the repository, the model cache, run folders, figures, installed packages' data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
FIGURES_DIR = REPO_ROOT / "figures"
RESULTS_DIR = REPO_ROOT / "results"


def cache_dir() -> Path:
    """Model cache: ``$PERSRM_CACHE``, else ``$XDG_CACHE_HOME/persrm``, else ``~/.cache/persrm``."""
    if os.environ.get("PERSRM_CACHE"):
        return Path(os.environ["PERSRM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "persrm"


def default_run_dir(profile: str) -> Path:
    """Run folder for a profile: ``$PERSRM_RUNS/<profile>``, else ``runs/<profile>`` (git-ignored)."""
    base = Path(os.environ["PERSRM_RUNS"]).expanduser() if os.environ.get("PERSRM_RUNS") else REPO_ROOT / "runs"
    return base / profile


def package_data_dir(package: str, *parts: str) -> Path:
    """The folder ``parts`` inside an installed package, found without importing the package.

    Raises:
        FileNotFoundError: the package is not installed, or has no such folder (both named).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; install it (see pyproject.toml)")
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not folder.is_dir():
        raise FileNotFoundError(f"package {package!r} has no folder {'/'.join(parts)} (looked in {folder})")
    return folder
