"""Regression runs: execute the notebooks, then compare every recorded metric with stored values.

Each notebook writes its headline metrics to ``<run>/metrics/<notebook>.json``. The stored
reference for a profile is ``results/<profile>/metrics.json`` (``{notebook: {metric: value}}``,
nested metrics flattened with dots). Tolerances come from ``results/tolerances.json``: glob
patterns on ``notebook:metric`` mapped to ``{"abs": x, "rel": y}`` or ``null`` (not compared:
timings); the first matching pattern wins.

    python -m persrm_lib.run.regression [--profile smoke] [--run-dir DIR] [--skip-run] [--update]
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.jsonl import read_json, write_json_atomic
from ..core.paths import RESULTS_DIR, default_run_dir
from .notebook import METRICS_DIR

TOLERANCES_FILE = RESULTS_DIR / "tolerances.json"


@dataclass(frozen=True)
class Comparison:
    key: str
    stored: Any
    measured: Any
    status: str  # ok, moved, missing, new, ignored


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


def load_tolerances(path: Path = TOLERANCES_FILE) -> list[tuple[str, dict[str, float] | None]]:
    if not path.is_file():
        return [("*", {"abs": 0.0, "rel": 0.0})]
    rules = read_json(path)
    return list(rules.items())


def tolerance_for(key: str, rules: list[tuple[str, dict[str, float] | None]]) -> dict[str, float] | None:
    for pattern, rule in rules:
        if fnmatch.fnmatchcase(key, pattern):
            return rule
    return {"abs": 0.0, "rel": 0.0}


def _close(stored: Any, measured: Any, rule: dict[str, float]) -> bool:
    if (
        isinstance(stored, bool)
        or isinstance(measured, bool)
        or not isinstance(stored, int | float)
        or not isinstance(measured, int | float)
    ):
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
    return RESULTS_DIR / profile / "metrics.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persrm_lib.run.regression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--run-dir", default=None, help="default: runs/<profile>-regression")
    parser.add_argument("--skip-run", action="store_true", help="compare an existing run folder without executing")
    parser.add_argument("--update", action="store_true", help="store the measured metrics as the new reference")
    parser.add_argument("--all", action="store_true", help="print every metric, not only those that moved")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(f"{args.profile}-regression")
    if not args.skip_run:
        from .runner import NotebookFailedError, run_notebooks

        try:
            run_notebooks(args.profile, run_dir)
        except NotebookFailedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    from .publish import PublishError, run_profile

    try:
        found = run_profile(run_dir)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if found != args.profile:  # a smoke run must never be compared with, or stored as, the cpu reference
        print(f"error: {run_dir} was run with profile {found!r}, not {args.profile!r}", file=sys.stderr)
        return 1
    measured = collect(run_dir)
    target = stored_path(args.profile)
    if args.update:
        write_json_atomic(measured, target, sort_keys=True)
        print(f"stored {sum(len(m) for m in measured.values())} metrics in {target}")
        return 0
    if not target.is_file():
        print(f"error: no stored metrics at {target}; run with --update to create them", file=sys.stderr)
        return 1
    rows = compare(read_json(target), measured, load_tolerances())
    print(format_table(rows, show_all=args.all))
    bad = [r for r in rows if r.status in ("moved", "missing")]
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "moved", "missing", "new", "ignored")}
    print("regression: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
