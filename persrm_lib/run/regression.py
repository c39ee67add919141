"""Regression runs: execute the notebooks, then compare every recorded metric with stored values.

    python -m persrm_lib.run.regression [--profile smoke] [--run-dir DIR] [--skip-run] [--update]

The reference is ``results/<profile>/metrics.json``; ``results/tolerances.json`` maps glob patterns on
``notebook:metric`` to ``{"abs": x, "rel": y}`` or ``null`` (not compared), the first match winning.
``--update`` stores only a run that may be the reference (:func:`persrm_lib.run.publish.reference_problem`)
and passes the learning gate (:func:`learning_problem`).

Exit status: 0 every metric within tolerance (or stored); 1 a metric moved or went missing, the
run did not learn, or a notebook failed; 2 refused (bad arguments, a run that may not be the
reference, a folder in use).
"""

from __future__ import annotations

import fnmatch
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.cli import Parser, fail, returns_status
from ..core.config import PROFILES, get_profile
from ..core.jsonl import MANIFEST, read_json, sha256_file, write_json_atomic
from ..core.paths import RESULTS_DIR, default_run_dir
from ..core.runlock import RunFolderBusyError, run_lock
from .notebook import collect
from .publish import PublishError, reference_problem, run_profile
from .settings import read_overrides

TOLERANCES_FILE = RESULTS_DIR / "tolerances.json"
LEARNING_GOAL = "goal_met/order_consistent_accuracy_rm_sft_rm_base"  # 05's SFT-over-base goal


def learning_problem(
    measured: dict[str, dict[str, Any]], profile: str, overrides: dict[str, Any] | None = None
) -> str | None:
    """Why a run's metrics fail the learning gate, or None: a profile that trains on the persona
    benchmark needs notebook 05's goal met: SFT minus base order-consistent accuracy on held-out
    personas, its 95% paired interval above 0."""
    data = get_profile(profile, overrides or {}).data
    if "personas" not in data.benchmarks or not data.trains_on("personas"):
        return None
    met = measured.get("05_evaluate", {}).get(LEARNING_GOAL)
    if met is True:
        return None
    why = "not recorded (no SFT or base stage judged persona pairs)" if met is None else "not met"
    return (
        f"learning gate: profile {profile!r} trains on personas, and SFT must beat base there (05_evaluate:"
        f"{LEARNING_GOAL}: {why}): the run did not learn"
    )


@dataclass(frozen=True)
class Comparison:
    """One metric compared: ``key`` is ``notebook:metric``; ``status`` says how it compared."""

    key: str
    stored: Any
    measured: Any
    status: str  # ok, moved, missing, new, ignored


EXACT = {"abs": 0.0, "rel": 0.0}  # the tolerance of a metric no rule matches


def load_tolerances(path: Path = TOLERANCES_FILE) -> list[tuple[str, dict[str, float] | None]]:
    """The ``(glob pattern, rule)`` pairs of ``results/tolerances.json`` in file order; every metric exact
    when the file is absent. A rule is ``{"abs": x, "rel": y}``, or None for a metric not compared."""
    return list(read_json(path).items()) if path.is_file() else [("*", EXACT)]


def tolerance_for(key: str, rules: list[tuple[str, dict[str, float] | None]]) -> dict[str, float] | None:
    """The rule of the first pattern that matches ``key`` (``fnmatch``, case-sensitive); exact when none does.

    >>> tolerance_for("03_sft:final_loss", [("*:final_loss", {"abs": 0.1}), ("*", {"abs": 0.0})])
    {'abs': 0.1}
    """
    return next((rule for pattern, rule in rules if fnmatch.fnmatchcase(key, pattern)), EXACT)


def _close(stored: Any, measured: Any, rule: dict[str, float]) -> bool:
    numbers = [isinstance(v, int | float) and not isinstance(v, bool) for v in (stored, measured)]
    if not all(numbers):
        return stored == measured
    if math.isnan(stored) and math.isnan(measured):
        return True
    return abs(measured - stored) <= max(rule.get("abs", 0.0), rule.get("rel", 0.0) * abs(stored))


def compare(stored: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]], rules) -> list[Comparison]:
    """Compare two metric sets key by key under the tolerance rules."""
    rows: list[Comparison] = []
    flat_stored = {f"{nb}:{k}": v for nb, m in stored.items() for k, v in m.items()}
    flat_measured = {f"{nb}:{k}": v for nb, m in measured.items() for k, v in m.items()}
    for key in sorted(set(flat_stored) | set(flat_measured)):
        rule = tolerance_for(key, rules)
        old, new = flat_stored.get(key), flat_measured.get(key)
        if rule is None:
            status = "ignored"
        elif key not in flat_measured:
            status = "missing"
        elif key not in flat_stored:
            status = "new"
        else:
            status = "ok" if _close(old, new, rule) else "moved"
        rows.append(Comparison(key, old, new, status))
    return rows


def format_table(rows: list[Comparison], show_all: bool = False) -> str:
    """A fixed-width table of the rows that moved, went missing or are new (every row with ``show_all``)."""
    shown = [r for r in rows if show_all or r.status in ("moved", "missing", "new")]
    if not shown:
        return "every compared metric is within tolerance"
    width = max(len(r.key) for r in shown)
    lines = [f"{'metric':<{width}}  {'stored':>14}  {'measured':>14}  status"]
    for r in shown:
        lines.append(f"{r.key:<{width}}  {_fmt(r.stored):>14}  {_fmt(r.measured):>14}  {r.status}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:14]


def stored_path(profile: str) -> Path:
    """Where a profile's reference metrics are stored: ``results/<profile>/metrics.json``."""
    return RESULTS_DIR / profile / "metrics.json"


def _record_in_manifest(target: Path, run_dir: Path) -> None:
    """Keep a published folder's manifest true after ``--update`` rewrote its ``metrics.json``."""
    marker = target.parent / MANIFEST
    if not marker.is_file():
        return
    manifest = read_json(marker)
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
        manifest["files"][target.name] = sha256_file(target)
        manifest["metrics_updated_from"] = str(run_dir)
        write_json_atomic(manifest, marker, sort_keys=True)


@returns_status
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m persrm_lib.run.regression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=sorted(PROFILES))
    parser.add_argument("--run-dir", default=None, help="default: runs/<profile>-regression")
    parser.add_argument("--skip-run", action="store_true", help="compare an existing run folder without executing")
    parser.add_argument("--update", action="store_true", help="store the measured metrics as the new reference")
    parser.add_argument("--all", action="store_true", help="print every metric, not only those that moved")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(f"{args.profile}-regression")
    if args.skip_run and not run_dir.is_dir():
        return fail(f"--run-dir {run_dir}: no such run folder (--skip-run compares an existing one)")
    if not args.skip_run:
        from .runner import NotebookFailedError, run_notebooks

        try:
            run_notebooks(args.profile, run_dir)
        except NotebookFailedError as exc:
            return fail(str(exc), status=1)
        except (RunFolderBusyError, ValueError) as exc:  # refused before any notebook ran
            return fail(str(exc))
    try:
        with run_lock(run_dir, f"python -m persrm_lib.run.regression --run-dir {run_dir}"):  # no writer while read
            found = run_profile(run_dir)
            if found != args.profile:  # a smoke run must never be compared with, or stored as, the cpu reference
                return fail(f"{run_dir} was run with profile {found!r}, not {args.profile!r}")
            if args.update:
                problem = reference_problem(run_dir, args.profile)
                if problem is not None:
                    return fail(f"--update refused: {problem}")
            measured = collect(run_dir)
            gate = learning_problem(measured, args.profile, read_overrides(run_dir))
    except (PublishError, RunFolderBusyError, ValueError) as exc:
        return fail(str(exc))
    target = stored_path(args.profile)
    if args.update:
        if gate is not None:
            return fail(f"--update refused: {gate}")
        write_json_atomic(measured, target, sort_keys=True)
        _record_in_manifest(target, run_dir)
        print(f"stored {sum(len(m) for m in measured.values())} metrics in {target}")
        return 0
    if not target.is_file():
        return fail(f"no stored metrics at {target}; run with --update to create them", status=1)
    rows = compare(read_json(target), measured, load_tolerances())
    print(format_table(rows, show_all=args.all))
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "moved", "missing", "new", "ignored")}
    print("regression: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    if gate is not None:
        print(gate, file=sys.stderr)
    return 1 if counts["moved"] or counts["missing"] or gate is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
