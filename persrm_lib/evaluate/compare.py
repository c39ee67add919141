"""Two or more runs side by side, pair for pair: what a setting changes (an ablation).

Runs that differ in one setting but share the data settings judge the same held-out pairs (and
smaller generative samples are nested in larger ones). Each run's per-pair results (a run folder's
or a published results folder's) are read, every judge named ``<judge>@<label>``, and each judge
compared with the same judge of the first run on the pairs both judged, with paired 95% bootstrap
intervals (:func:`persrm_lib.evaluate.metrics.paired_comparison`).

    python -m persrm_lib.evaluate.compare --run none=runs/cpu --run stylometric=runs/cpu-evidence \\
        [--judges rm-sft,rm-rft] [--exemplars 3] [--out comparison.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import runfiles
from ..core.cli import Parser, fail, output_problem, parse_names, returns_status, seed_number, whole_number
from ..core.jsonl import write_json_atomic
from . import metrics
from .records import read_per_pair

SUMMARY_COLUMNS: tuple[str, ...] = (
    "judge", "run", "n", "accuracy", "ci_low", "ci_high", "order_consistent_accuracy", "a_preference", "format",
    "reasoning_agreement",
)  # fmt: skip


def per_pair_file(folder: str | Path) -> Path:
    """A run folder's ``eval/per_pair.csv``, or a published folder's ``tables/eval_per_pair.csv``
    (:func:`persrm_lib.run.publish.publish`); the former when neither exists, so the reader names it."""
    run_file = runfiles.per_pair_path(Path(folder))
    published = runfiles.published_per_pair_path(Path(folder))
    return published if not run_file.is_file() and published.is_file() else run_file


def combine_runs(runs: Mapping[str, str | Path], exemplars: int | None = None) -> pd.DataFrame:
    """Per-pair results of several runs (``runs``: label -> run or published results folder, in
    comparison order) in one table, each judge renamed ``<judge>@<label>``, with added ``run`` (the
    label) and ``base_judge`` (the judge's own name) columns; only ``exemplars`` exemplars (``None``:
    the first run's largest, as notebook 05's tables).

    Raises:
        ValueError: fewer than two runs, an empty label or one with ``@``, a per-pair file with other columns.
        FileNotFoundError: a folder that does not exist, or one without per-pair results (named).
    """
    if len(runs) < 2:
        raise ValueError(f"compare needs at least two runs, got {len(runs)}")
    bad = [label for label in runs if "@" in label or not label]
    if bad:
        raise ValueError(f"run labels must be non-empty and contain no '@': {bad}")
    missing = [str(folder) for folder in runs.values() if not Path(folder).is_dir()]
    if missing:
        raise FileNotFoundError(f"no such run or results folder: {', '.join(missing)}")
    frames = [read_per_pair(per_pair_file(folder)).assign(run=label) for label, folder in runs.items()]
    combined = pd.concat(frames, ignore_index=True)
    combined = combined.assign(
        base_judge=combined["judge"], judge=combined["judge"].astype(str) + "@" + combined["run"]
    )
    if exemplars is None:
        exemplars = int(frames[0]["n_exemplars"].max())
    return combined[combined["n_exemplars"] == exemplars].reset_index(drop=True)


def compare_runs(
    combined: pd.DataFrame,
    judges: Sequence[str] | None = None,
    by: str = "negative_kind",
    n_bootstrap: int = metrics.N_BOOTSTRAP,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each judge (default: every judge of the first run) per run, and each later run's judge minus
    the first run's on shared pairs, by ``by``. Returns ``(summary, paired)``: :data:`SUMMARY_COLUMNS`
    rows per judge and run; per measure of :data:`persrm_lib.evaluate.metrics.MEASURES`,
    :func:`persrm_lib.evaluate.metrics.paired_comparison` rows with ``measure, judge, run`` for
    ``baseline`` (the later run is the "model", the first the "baseline")."""
    labels = list(dict.fromkeys(combined["run"]))
    first = labels[0]
    names = list(judges) if judges else list(dict.fromkeys(combined.loc[combined["run"] == first, "base_judge"]))
    summary_rows = []
    paired_frames = []
    for name in names:
        for label in labels:
            rows = combined[combined["judge"] == f"{name}@{label}"]
            if rows.empty:
                continue
            row = metrics.metric_row(rows, n_bootstrap, seed)
            summary_rows.append({"judge": name, "run": label, **{k: row[k] for k in SUMMARY_COLUMNS[2:]}})
        for label in labels[1:]:
            for measure in metrics.MEASURES:
                table = metrics.paired_comparison(
                    combined, f"{name}@{label}", [f"{name}@{first}"], by, n_bootstrap, seed, measure
                )
                if not table.empty:
                    paired_frames.append(
                        table.drop(columns=["baseline"]).assign(measure=measure, judge=name, run=label)
                    )
    summary = pd.DataFrame(summary_rows, columns=list(SUMMARY_COLUMNS))
    columns = ["measure", "judge", "run", *metrics.PAIRED_COLUMNS[1:]]
    paired = pd.concat(paired_frames, ignore_index=True)[columns] if paired_frames else pd.DataFrame(columns=columns)
    return summary, paired


def _parse_run(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected LABEL=RUN_FOLDER, e.g. none=runs/cpu")
    return label, Path(folder)


@returns_status
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 2 with one line for bad arguments or inputs, checked before any
    table is read or written; ``--out`` is written atomically and never over an input."""
    parser = Parser(prog="python -m persrm_lib.evaluate.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=_parse_run, action="append", required=True, metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--judges", type=parse_names, help="comma-separated judges (default: all of the first run's)")
    parser.add_argument("--exemplars", type=whole_number(1), help="exemplar count (default: the largest)")
    parser.add_argument(
        "--by", default="negative_kind", choices=metrics.BREAKDOWNS, help="breakdown of the differences"
    )
    parser.add_argument("--n-bootstrap", type=whole_number(1), default=metrics.N_BOOTSTRAP)
    parser.add_argument("--seed", type=seed_number, default=0)
    parser.add_argument("--out", type=Path, help="also write the two tables as JSON")
    args = parser.parse_args(argv)
    runs = dict(args.run)
    if len(runs) != len(args.run):
        return fail("each --run needs its own label")
    if args.out is not None:
        inputs = [per_pair_file(folder) for folder in runs.values()]
        problem = output_problem(args.out, "--out", inputs)
        if problem is not None:
            return fail(problem)
    try:
        combined = combine_runs(runs, args.exemplars)
        known = set(combined["base_judge"])
        unknown = [j for j in args.judges or [] if j not in known]
        if unknown:
            return fail(f"--judges: {', '.join(unknown)} not in the runs (they have {', '.join(sorted(known))})")
        summary, paired = compare_runs(combined, args.judges, args.by, args.n_bootstrap, args.seed)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return fail(str(exc))
    print(summary.round(3).to_string(index=False))
    print()
    print(paired.round(3).to_string(index=False))
    if args.out is not None:
        document: dict[str, Any] = {
            "runs": {label: str(folder) for label, folder in runs.items()},
            "exemplars": int(combined["n_exemplars"].iloc[0]) if len(combined) else None,
            "summary": json.loads(summary.to_json(orient="records")),
            "paired": json.loads(paired.to_json(orient="records")),
        }
        write_json_atomic(document, args.out, sort_keys=True)
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
