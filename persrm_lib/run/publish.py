"""Publish a finished run into ``results/<profile>/``: what a reader needs without re-running it.

    python -m persrm_lib.run.publish --run-dir runs/cpu [--profile cpu] [--max-adapter-mb 20] [--readme README.md]
    python -m persrm_lib.run.publish --restore --run-dir runs/cpu     # adapters back into a run folder

Copies, from a run whose seven notebooks all executed under ``--profile``:

- ``metrics.json``: every notebook's headline metrics (the regression reference of that profile);
- ``logs/<stage>.csv``: the SFT and GRPO training logs;
- ``tables/``: notebook 05's tables (CSV and Markdown, per-pair results included), 07's tallies;
- ``completions/``: what the reward model wrote -- ``eval_<stage>.jsonl``, notebook 05's completions
  per stage in both orders (``runfiles.eval_completions_path``), and ``grpo_<stage>.jsonl``, the
  GRPO samples per step (``runfiles.completions_path``) -- so a reader can check every verdict;
- ``adapters/<stage>/``: each trained LoRA adapter whose files total less than ``--max-adapter-mb``,
  so notebook 05 can be re-run without training (``persrm_lib.run.publish.restore`` puts them back);
- ``MANIFEST.json``: the profile's settings (with the run's overrides, ``overrides``), each
  notebook's wall time, and a SHA-256 per file.

A run of another profile is refused, so a smoke run can never overwrite the reference run; so is a
run with overrides (``python -m persrm_lib.run --set``) published to ``results/<profile>``: give it
its own ``--dest``.
Figures are already in ``figures/``: notebooks of a published profile save them there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.config import get_profile
from ..core.jsonl import read_json, sha256_file, write_json_atomic
from ..core.paths import RESULTS_DIR
from .settings import read_overrides

NOTEBOOK_COUNT = 7
LOG_STAGES = ("sft", "rft", "rft_from_base")
ADAPTER_STAGES = ("sft", "rft", "rft_from_base")
TABLE_SOURCES = ("eval", "behavior")
DEFAULT_MAX_ADAPTER_MB = 20.0


class PublishError(RuntimeError):
    """The run folder cannot be published (incomplete, another profile, missing files)."""


def executed_metadata(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Papermill's metadata of each executed notebook in ``<run>/executed/``, by notebook stem."""
    return {
        path.stem: read_json(path).get("metadata", {}).get("papermill", {})
        for path in sorted((Path(run_dir) / "executed").glob("*.ipynb"))
    }


def run_profile(run_dir: str | Path, executed: dict[str, dict[str, Any]] | None = None) -> str:
    """The profile every executed notebook of a run folder was given (papermill's parameters).

    Raises:
        PublishError: no executed notebooks, or notebooks run under different profiles.
    """
    executed = executed_metadata(run_dir) if executed is None else executed
    if not executed:
        raise PublishError(f"{run_dir}/executed holds no notebooks: run the notebooks first")
    profiles = {f"{stem}.ipynb": meta.get("parameters", {}).get("profile") for stem, meta in executed.items()}
    found = set(profiles.values())
    if len(found) != 1 or None in found:
        listing = ", ".join(f"{k}: {v}" for k, v in profiles.items())
        raise PublishError(f"{run_dir}: the executed notebooks disagree on the profile ({listing})")
    return found.pop()


def notebook_seconds(executed: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Wall time of each executed notebook, from :func:`executed_metadata`."""
    return {
        stem: round(float(meta["duration"]), 1) for stem, meta in executed.items() if meta.get("duration") is not None
    }


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _make_portable(adapter: Path, run: Path, model_name: str) -> None:
    """Strip this machine from a copied adapter: the base model is named by its registry name, paths
    into the run folder become relative to it, and PEFT's generated model card (which repeats the
    local base path) and the trainer's pickled arguments are dropped. The weights are not touched."""
    for generated in ("README.md", "training_args.bin"):  # the model card; the trainer's pickled arguments
        if (adapter / generated).is_file():
            (adapter / generated).unlink()
    config = adapter / "adapter_config.json"
    if config.is_file():
        data = read_json(config)
        data["base_model_name_or_path"] = model_name
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    info = adapter / "persrm_training.json"
    if info.is_file():
        data = read_json(info)
        root = run.resolve()
        for key, value in data.items():
            if isinstance(value, str) and value.startswith(str(root)):
                data[key] = Path(value).resolve().relative_to(root).as_posix()
        info.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _completion_files(run: Path) -> list[tuple[str, Path]]:
    """(published name, source) of every completion file the run has."""
    from ..evaluate.records import STAGES

    files = [(f"eval_{stage}.jsonl", runfiles.eval_completions_path(run, stage)) for stage in STAGES]
    files += [(f"grpo_{stage}.jsonl", runfiles.completions_path(run, stage)) for stage in LOG_STAGES[1:]]
    return [(name, path) for name, path in files if path.is_file()]


def publish(
    run_dir: str | Path,
    profile: str,
    dest: str | Path | None = None,
    max_adapter_mb: float = DEFAULT_MAX_ADAPTER_MB,
    adapter_stages: tuple[str, ...] = ADAPTER_STAGES,
) -> dict[str, Any]:
    """Copy a finished run's results into ``dest`` (default ``results/<profile>``), atomically.

    The new folder is assembled beside ``dest`` and swapped in only when complete, so a failure
    leaves the previous results as they were.

    Returns:
        The manifest written to ``MANIFEST.json``.

    Raises:
        PublishError: the run is incomplete, was run under another profile, or was run with
            overrides and ``dest`` is the profile's reference folder.
    """
    from .regression import collect

    run = Path(run_dir)
    executed = executed_metadata(run)
    found = run_profile(run, executed)
    if found != profile:
        raise PublishError(
            f"{run} was run with profile {found!r}, not {profile!r}: refusing to publish it as {profile}"
        )
    if len(executed) < NOTEBOOK_COUNT:
        names = ", ".join(executed)
        raise PublishError(f"{run}: only {len(executed)} of {NOTEBOOK_COUNT} notebooks executed ({names})")
    dest = Path(dest) if dest is not None else RESULTS_DIR / profile
    overrides = read_overrides(run)
    if overrides and dest.resolve() == (RESULTS_DIR / profile).resolve():
        raise PublishError(
            f"{run} was run with overrides {overrides}: it is not the {profile} reference run; publish it with --dest"
        )
    settings = get_profile(profile, overrides)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        write_json_atomic(collect(run), staging / "metrics.json", sort_keys=True)
        for stage in LOG_STAGES:
            log = runfiles.log_path(run, stage)
            if log.is_file():
                (staging / "logs").mkdir(exist_ok=True)
                shutil.copyfile(log, staging / "logs" / f"{stage}.csv")
        for source in TABLE_SOURCES:
            folder = runfiles.stage_dir(run, source)
            for table in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.md")):
                (staging / "tables").mkdir(exist_ok=True)
                shutil.copyfile(table, staging / "tables" / f"{source}_{table.name}")
        for name, path in _completion_files(run):
            (staging / "completions").mkdir(exist_ok=True)
            shutil.copyfile(path, staging / "completions" / name)
        skipped = {}
        for stage in adapter_stages:
            adapter = runfiles.adapter_dir(run, stage)
            if not adapter.is_dir():
                continue
            size_mb = _tree_bytes(adapter) / 2**20
            if size_mb >= max_adapter_mb:
                skipped[stage] = f"{size_mb:.1f} MB is not under {max_adapter_mb:g} MB"
                continue
            shutil.copytree(adapter, staging / "adapters" / stage)
            _make_portable(staging / "adapters" / stage, run, settings.model.name)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest = {
            "profile": profile,
            "settings": settings.to_dict(),
            "overrides": overrides,
            "notebook_seconds": notebook_seconds(executed),
            "adapters_left_out": skipped,
            "files": {p.relative_to(staging).as_posix(): sha256_file(p) for p in files},
        }
        write_json_atomic(manifest, staging / "MANIFEST.json", sort_keys=True)
        old = dest.with_name(f".{dest.name}-old")
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def restore(results_dir: str | Path, run_dir: str | Path) -> list[str]:
    """Put the published adapters back into a run folder (``<run>/<stage>/adapter``), so notebook 05
    evaluates the reference models without training; existing adapters are left alone.

    Returns:
        The stages restored.
    """
    restored = []
    for folder in sorted((Path(results_dir) / "adapters").glob("*")):
        target = runfiles.adapter_dir(Path(run_dir), folder.name)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, target)
        restored.append(folder.name)
    return restored


README_START = (
    "<!-- results:{profile} start (python -m persrm_lib.run.publish --readme README.md writes this block) -->"
)
README_END = "<!-- results:{profile} end -->"


def results_markdown(results_dir: str | Path, n_bootstrap: int = 1000, seed: int = 0) -> str:
    """The README's results block, computed from a published results folder.

    Accuracy (%) with its 95% bootstrap interval and the pair count per benchmark at notebook 05's
    main exemplar count, order-consistent accuracy, A-preference, format compliance, position
    consistency and reasoning agreement per judge (:func:`persrm_lib.evaluate.metrics.metric_row`), then the run's
    targets (``tables/eval_goals.md``, :func:`persrm_lib.evaluate.metrics.reference_goals`) and each notebook's
    wall time.
    """
    import pandas as pd

    from ..evaluate import metrics

    folder = Path(results_dir)
    manifest = read_json(folder / "MANIFEST.json")
    main_k = read_json(folder / "metrics.json")["05_evaluate"]["main_exemplars"]
    rows = pd.read_csv(runfiles.published_per_pair_path(folder))
    rows = rows[rows["n_exemplars"] == main_k]
    order = list(dict.fromkeys(rows["judge"]))
    by_bench = metrics.summarize(rows, ["judge", "benchmark"], n_bootstrap, seed)
    overall = metrics.summarize(rows, "judge", n_bootstrap, seed).set_index("judge")
    benches = sorted(rows["benchmark"].unique())
    rates = {"order-consistent": "order_consistent_accuracy", "A-pref.": "a_preference", "format": "format"}
    rates |= {"consistency": "consistency", "reasoning": "reasoning_agreement"}
    header = ["judge", *[f"{b} acc. % [95% CI] (n)" for b in benches], "all", *rates]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for judge in order:
        cells = [f"`{judge}`"]
        for bench in benches:
            hit = by_bench[(by_bench["judge"] == judge) & (by_bench["benchmark"] == bench)]
            if hit.empty:
                cells.append("–")
                continue
            r = hit.iloc[0]
            cells.append(
                f"{100 * r['accuracy']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] ({int(r['n'])})"
            )
        o = overall.loc[judge]
        cells.append(f"{100 * o['accuracy']:.1f} ({int(o['n'])})")
        cells += ["–" if o.get(c) is None or o[c] != o[c] else f"{o[c]:.2f}" for c in rates.values()]
        lines.append("| " + " | ".join(cells) + " |")
    parts = [f"Profile `{manifest['profile']}`, {main_k} exemplars per test pair, held-out authors.", "", *lines]
    goals = folder / "tables" / "eval_goals.md"
    if goals.is_file():
        parts += [
            "",
            "Targets of the reference run (`persrm_lib.evaluate.metrics.reference_goals`; each difference on the "
            "pairs both judges judged, with its 95% paired bootstrap interval):",
            "",
        ]
        parts += [goals.read_text().strip()]
    seconds = manifest.get("notebook_seconds", {})
    if seconds:
        total = sum(seconds.values())
        timing = ", ".join(f"{name[:2]} {value / 60:.1f}" for name, value in seconds.items())
        parts += ["", f"Wall time (minutes): {timing}; {total / 60:.0f} in all."]
    return "\n".join(parts)


def update_readme(readme: str | Path, block: str, profile: str = "cpu") -> bool:
    """Replace the text between the README's results markers with ``block``; True when it changed.

    Raises:
        PublishError: the markers are missing.
    """
    path = Path(readme)
    text = path.read_text()
    start, end = README_START.format(profile=profile), README_END.format(profile=profile)
    if start not in text or end not in text:
        raise PublishError(f"{path} has no results block: add the lines {start!r} and {end!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{block}\n{end}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persrm_lib.run.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--profile", default="cpu", help="the profile the run must have been executed with")
    parser.add_argument("--dest", type=Path, default=None, help="default: results/<profile>")
    parser.add_argument("--max-adapter-mb", type=float, default=DEFAULT_MAX_ADAPTER_MB)
    parser.add_argument("--adapters", default=",".join(ADAPTER_STAGES), help="stages whose adapters to publish")
    parser.add_argument("--readme", type=Path, default=None, help="also rewrite this README's results block")
    parser.add_argument(
        "--restore", action="store_true", help="the other way: copy the published adapters into --run-dir"
    )
    args = parser.parse_args(argv)
    dest = args.dest or RESULTS_DIR / args.profile
    if args.restore:
        restored = restore(dest, args.run_dir)
        print(f"restored adapters: {', '.join(restored) or 'none (already present or none published)'}")
        return 0
    stages = tuple(s.strip() for s in args.adapters.split(",") if s.strip())
    try:
        manifest = publish(args.run_dir, args.profile, dest, args.max_adapter_mb, stages)
        if args.readme is not None:
            changed = update_readme(args.readme, results_markdown(dest), args.profile)
            print(f"{args.readme}: results block {'updated' if changed else 'unchanged'}")
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {len(manifest['files'])} files to {dest}")
    for stage, why in manifest["adapters_left_out"].items():
        print(f"adapter {stage} left out: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
