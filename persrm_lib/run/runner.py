"""Run the notebooks in order, headless, with papermill, into a run folder.

Every notebook gets ``profile`` and ``run_dir``; any other parameter goes to the notebooks whose
``parameters`` cell declares it. A name that no notebook of the run declares is refused (papermill
itself only warns). The runner stops at the first failing notebook, naming it and the failing cell,
keeps the executed copies under ``<run>/executed/`` and prints one progress line per notebook.

    python -m persrm_lib.run --profile smoke [--run-dir DIR] [--only 01 02] [-p NAME VALUE ...]
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import PROFILE_ENV, PROFILES, get_profile
from ..core.paths import NOTEBOOKS_DIR, default_run_dir

ALWAYS_PASSED = ("profile", "run_dir")
EXECUTED_SUBDIR = "executed"


class UnknownParameterError(ValueError):
    """A parameter that no notebook of the run declares."""


class NotebookFailedError(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""

    def __init__(self, notebook: str, cell_index: int | None, detail: str, executed: Path):
        self.notebook, self.cell_index, self.executed = notebook, cell_index, executed
        where = f"cell {cell_index}" if cell_index is not None else "before any cell ran"
        super().__init__(f"notebook {notebook} failed in {where}: {detail} (executed copy: {executed})")


@dataclass(frozen=True)
class NotebookRun:
    name: str
    executed: Path
    seconds: float


def discover(notebooks_dir: Path = NOTEBOOKS_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """The ordered notebooks ``NN_*.ipynb``; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        missing = [o for o in only if not any(p.name.startswith(o) for p in found)]
        if missing:
            raise FileNotFoundError(f"no notebook matches {', '.join(missing)} in {notebooks_dir}")
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
    return found


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    from papermill.inspection import inspect_notebook

    return {name: _parse_value(info["default"]) for name, info in inspect_notebook(str(notebook)).items()}


def plan_parameters(
    notebooks: Sequence[Path], profile: str, run_dir: Path, params: dict[str, Any]
) -> dict[Path, dict[str, Any]]:
    """Which parameters each notebook receives; refuses names that no notebook declares."""
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    for nb, names in declared.items():
        lacking = [n for n in ALWAYS_PASSED if n not in names]
        if lacking:
            raise UnknownParameterError(f"{nb.name} has no {', '.join(lacking)} in its parameters cell")
    known = set().union(*[set(d) for d in declared.values()]) if declared else set()
    unknown = sorted(set(params) - known)
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {', '.join(unknown)}: no notebook of this run declares them; known: {', '.join(sorted(known - set(ALWAYS_PASSED)))}"
        )
    base = {"profile": profile, "run_dir": str(run_dir)}
    return {nb: {**base, **{k: v for k, v in params.items() if k in names}} for nb, names in declared.items()}


def _parse_value(text: str) -> Any:
    """Read ``-p`` values as Python literals when they are (``3``, ``0.5``, ``True``), else text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_notebooks(
    profile: str,
    run_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    log: Callable[[str], None] = print,
) -> list[NotebookRun]:
    """Execute the notebooks in order; raise :class:`NotebookFailedError` at the first failure."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    cfg = get_profile(profile)
    run = Path(run_dir).resolve() if run_dir else default_run_dir(profile).resolve()
    notebooks = discover(notebooks_dir, only)
    plan = plan_parameters(notebooks, profile, run, params or {})
    executed_dir = run / EXECUTED_SUBDIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    # Kernels inherit the environment: pin threads and hashing before any starts.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(cfg.num_threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["PYTHONHASHSEED"] = str(cfg.seed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    log(f"run folder {run} (profile {profile}, {len(notebooks)} notebooks)")
    results: list[NotebookRun] = []
    for i, nb in enumerate(notebooks, start=1):
        out = executed_dir / nb.name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb),
                str(out),
                parameters=plan[nb],
                kernel_name="python3",
                cwd=str(nb.parent),
                progress_bar=False,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            log(f"[{i}/{len(notebooks)}] {nb.stem:<24} FAILED after {time.perf_counter() - start:6.1f}s")
            raise NotebookFailedError(nb.name, exc.cell_index, f"{exc.ename}: {exc.evalue}", out) from None
        except Exception as exc:  # kernel died, notebook unreadable
            log(f"[{i}/{len(notebooks)}] {nb.stem:<24} FAILED after {time.perf_counter() - start:6.1f}s")
            raise NotebookFailedError(nb.name, None, f"{type(exc).__name__}: {exc}", out) from exc
        seconds = time.perf_counter() - start
        log(f"[{i}/{len(notebooks)}] {nb.stem:<24} ok {seconds:6.1f}s")
        results.append(NotebookRun(nb.name, out, seconds))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m persrm_lib.run", description="Execute the notebooks in order with papermill."
    )
    parser.add_argument("--profile", default=os.environ.get(PROFILE_ENV, "smoke"), choices=sorted(PROFILES))
    parser.add_argument(
        "--run-dir", default=None, help="run folder (default: runs/<profile>, or $PERSRM_RUNS/<profile>)"
    )
    parser.add_argument(
        "--only", nargs="+", default=None, metavar="NN", help="run only notebooks starting with these prefixes"
    )
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    params = {name: _parse_value(value) for name, value in args.parameter}
    try:
        runs = run_notebooks(args.profile, args.run_dir, params, args.only)
    except (UnknownParameterError, NotebookFailedError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(r.seconds for r in runs)
    print(f"done: {len(runs)} notebooks in {total:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
