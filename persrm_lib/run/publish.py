"""Publish a finished run into ``results/<profile>/``: what a reader needs without re-running it.

    python -m persrm_lib.run.publish --run-dir runs/cpu [--profile cpu] [--max-adapter-mb 20] [--readme README.md]
    python -m persrm_lib.run.publish --restore --run-dir runs/cpu     # adapters back into a run folder

What is published: docs/design.md, "Run-folder layout". A run of another profile, a variant run
published to ``results/<profile>`` (:func:`reference_problem`) and a ``--dest`` that publish did not
make (:func:`replace_problem`) are refused with exit status 2, touching nothing; ``--restore``
deletes nothing.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..core import runfiles
from ..core.cli import Parser, fail, finite_number, parse_names, returns_status
from ..core.config import get_profile
from ..core.jsonl import MANIFEST, file_checksums, read_json, sha256_file, unlisted_files, write_json_atomic
from ..core.paths import FIGURES_DIR, RESULTS_DIR
from ..core.runlock import RunFolderBusyError, run_lock
from .notebook import FIGURES_SUBDIR, PUBLISHED_PROFILES, collect
from .runner import ALWAYS_PASSED, EXECUTED_SUBDIR
from .settings import RunSettingsError, read_overrides, read_settings

NOTEBOOK_COUNT = 7
TRAINED_STAGES = ("sft", "rft", "rft_from_base")  # each has a log and an adapter
TABLE_SOURCES = ("eval", "behavior")
DEFAULT_MAX_ADAPTER_MB = 20.0
UNPUBLISHED = ("README.md", "training_args.bin")  # PEFT's model card (a local path); pickled trainer arguments
NOTEBOOK_FIGURE = re.compile(r"\d\d_[^/]+\.png")  # a notebook's figure: 05_accuracy_by_benchmark.png


class PublishError(RuntimeError):
    """The run folder cannot be published (incomplete, another profile, missing files)."""


def executed_metadata(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Papermill's metadata of each executed notebook in ``<run>/executed/``, by notebook stem."""
    return {
        path.stem: read_json(path).get("metadata", {}).get("papermill", {})
        for path in sorted((Path(run_dir) / EXECUTED_SUBDIR).glob("*.ipynb"))
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


def _run_problem(run: Path, profile: str, executed: dict[str, dict[str, Any]]) -> str | None:
    """Why ``run`` is not a complete run of ``profile``, or None."""
    try:
        found = run_profile(run, executed)
    except PublishError as exc:
        return str(exc)
    if found != profile:
        return f"{run} was run with profile {found!r}, not {profile!r}"
    if len(executed) < NOTEBOOK_COUNT:
        return f"{run}: only {len(executed)} of {NOTEBOOK_COUNT} notebooks executed ({', '.join(executed)})"
    return None


def reference_problem(
    run_dir: str | Path, profile: str, executed: dict[str, dict[str, Any]] | None = None
) -> str | None:
    """Why a run may not become ``profile``'s reference (``results/<profile>``), or None when it may:
    every notebook executed under ``profile``, the folder's recorded profile is ``profile``, no
    ``--set`` overrides, no notebook parameter but the two the runner passes."""
    run = Path(run_dir)
    try:
        executed = executed_metadata(run) if executed is None else executed
    except ValueError as exc:  # an executed notebook that is not JSON
        return str(exc)
    problem = _run_problem(run, profile, executed)
    if problem is not None:
        return problem
    try:
        recorded, overrides = read_settings(run)
    except RunSettingsError as exc:
        return str(exc)
    if recorded is not None and recorded != profile:
        return f"{run} was started with profile {recorded!r} (settings.json), not {profile!r}"
    if overrides:
        return f"{run} was run with overrides {overrides}: it is a variant, not the {profile} reference run"
    given = sorted({k for meta in executed.values() for k in meta.get("parameters", {})} - set(ALWAYS_PASSED))
    if given:
        return (
            f"{run} was run with notebook parameters {', '.join(given)} (-p): it is a variant, not the "
            f"{profile} reference run"
        )
    return None


def _changed_files(folder: Path, listed: dict[str, str]) -> list[str]:
    """The files of a manifest's ``{name: sha256}`` that are missing from ``folder`` or differ, sorted."""
    return [
        n for n, digest in sorted(listed.items()) if not (folder / n).is_file() or sha256_file(folder / n) != digest
    ]


def replace_problem(dest: str | Path, profile: str, run_dir: str | Path | None = None) -> str | None:
    """Why publish may not replace ``dest``, or None when it may: ``dest`` does not exist, is empty, or
    holds exactly the unchanged files that its ``MANIFEST.json`` lists for ``profile`` -- and is not
    the run folder, inside it or above it."""
    dest = Path(dest)
    if run_dir is not None:
        here, run = dest.resolve(), Path(run_dir).resolve()
        if here == run:
            return f"--dest {dest} is the run folder itself"
        if run in here.parents:
            return f"--dest {dest} is inside the run folder {run_dir}"
        if here in run.parents:
            return f"--dest {dest} holds the run folder {run_dir}"
    if dest.is_symlink():
        return f"--dest {dest} is a link; publish replaces only a folder it made"
    if not dest.exists():
        return None
    if not dest.is_dir():
        return f"--dest {dest} is a file; publish replaces only a folder it made"
    if not any(dest.iterdir()):
        return None
    if not (dest / MANIFEST).is_file():
        names = ", ".join(p.name for p in sorted(dest.iterdir())[:5])
        return f"--dest {dest} holds files that publish did not write (no {MANIFEST}: {names}); move them away or choose another --dest"
    try:
        manifest = published_manifest(dest)
    except PublishError as exc:
        return f"--dest {dest}: {exc}; publish replaces only a folder it made"
    listed = manifest["files"]
    if manifest["profile"] != profile:
        return f"--dest {dest} holds results published for profile {manifest['profile']!r}, not {profile!r}"
    extra = unlisted_files(dest, listed)
    if extra:
        return f"--dest {dest} holds files that publish did not write ({', '.join(extra[:5])}); move them away"
    changed = _changed_files(dest, listed)
    if changed:
        return f"--dest {dest}: files changed or removed since they were published ({', '.join(changed[:5])}); move them away"
    return None


def notebook_seconds(executed: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Wall time of each executed notebook, from :func:`executed_metadata`."""
    return {
        stem: round(float(meta["duration"]), 1) for stem, meta in executed.items() if meta.get("duration") is not None
    }


def _make_portable(adapter: Path, run: Path, model_name: str) -> None:
    """Strip this machine's paths from a copied adapter: the base model by its registry name, paths relative."""
    config = adapter / "adapter_config.json"
    if config.is_file():
        data = read_json(config)
        data["base_model_name_or_path"] = model_name
        write_json_atomic(data, config, sort_keys=True)
    info = adapter / "persrm_training.json"
    if info.is_file():
        data = read_json(info)
        root = run.resolve()
        for key, value in data.items():
            if isinstance(value, str) and value.startswith(str(root)):
                data[key] = Path(value).resolve().relative_to(root).as_posix()
        write_json_atomic(data, info, sort_keys=True)


def _run_files(run: Path) -> list[tuple[Path, str]]:
    """(source, published name) of every log, table and completion file the run has."""
    from ..evaluate.records import STAGES

    files = [(runfiles.log_path(run, stage), f"logs/{stage}.csv") for stage in TRAINED_STAGES]
    for source in TABLE_SOURCES:
        folder = runfiles.stage_dir(run, source)
        tables = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.md"))
        files += [(table, f"tables/{source}_{table.name}") for table in tables]
    files += [(runfiles.eval_completions_path(run, s), f"completions/eval_{s}.jsonl") for s in STAGES]
    files += [(runfiles.completions_path(run, s), f"completions/grpo_{s}.jsonl") for s in TRAINED_STAGES[1:]]
    return [(path, name) for path, name in files if path.is_file()]


def sync_figures(run_dir: str | Path, figures_dir: str | Path = FIGURES_DIR) -> tuple[list[str], list[str]]:
    """Make the notebooks' figures (``NN_name.png``) in ``figures_dir`` exactly those of ``<run>/figures``
    (if it exists), leaving other files alone; return the (copied, removed) names, sorted."""
    source, target = Path(run_dir) / FIGURES_SUBDIR, Path(figures_dir)
    if not source.is_dir():
        return [], []
    drawn = sorted(p.name for p in source.glob("*.png") if NOTEBOOK_FIGURE.fullmatch(p.name))
    target.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in target.glob("*.png") if NOTEBOOK_FIGURE.fullmatch(p.name) and p.name not in drawn)
    for name in drawn:
        shutil.copyfile(source / name, target / name)
    for name in stale:
        (target / name).unlink()
    return drawn, stale


def publish(
    run_dir: str | Path,
    profile: str,
    dest: str | Path | None = None,
    max_adapter_mb: float = DEFAULT_MAX_ADAPTER_MB,
    adapter_stages: tuple[str, ...] = TRAINED_STAGES,
) -> dict[str, Any]:
    """Copy a finished run's results into ``dest`` (default ``results/<profile>``), assembled beside it
    and swapped in only when complete; return the manifest.

    Raises:
        PublishError: the run is incomplete, of another profile, a variant published to the reference
            folder, or ``dest`` is not a folder publish may replace; nothing is touched then.
        RunFolderBusyError: another process writes to the run folder.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise PublishError(f"--run-dir {run} is not a folder")
    with run_lock(run, f"python -m persrm_lib.run.publish --run-dir {run}"):  # no writer while it is read
        executed = executed_metadata(run)
        problem = _run_problem(run, profile, executed)
        dest = Path(dest) if dest is not None else RESULTS_DIR / profile
        reference = dest.resolve() == (RESULTS_DIR / profile).resolve()
        if problem is None and reference:
            variant = reference_problem(run, profile, executed)
            problem = None if variant is None else f"{variant}; publish it with --dest"
        problem = problem or replace_problem(dest, profile, run)
        if problem is not None:
            raise PublishError(problem)
        overrides = read_overrides(run)
        settings = get_profile(profile, overrides)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            write_json_atomic(collect(run), staging / "metrics.json", sort_keys=True)
            for source, name in _run_files(run):
                (staging / name).parent.mkdir(exist_ok=True)
                shutil.copyfile(source, staging / name)
            skipped = {}
            for stage in adapter_stages:
                adapter = runfiles.adapter_dir(run, stage)
                if not adapter.is_dir():
                    continue
                size_mb = sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file()) / 2**20
                if size_mb >= max_adapter_mb:
                    skipped[stage] = f"{size_mb:.1f} MB is not under {max_adapter_mb:g} MB"
                    continue
                shutil.copytree(adapter, staging / "adapters" / stage, ignore=shutil.ignore_patterns(*UNPUBLISHED))
                _make_portable(staging / "adapters" / stage, run, settings.model.name)
            manifest = {
                "profile": profile,
                "settings": dataclasses.asdict(settings),
                "overrides": overrides,
                "notebook_seconds": notebook_seconds(executed),
                "adapters_left_out": skipped,
                "files": file_checksums(staging),
            }
            write_json_atomic(manifest, staging / MANIFEST, sort_keys=True)
            # the old folder goes into a folder made here (never a fixed name that might hold something else)
            trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
            moved = dest.exists()
            if moved:
                dest.rename(trash / dest.name)
            try:
                staging.rename(dest)
            except BaseException:
                if moved:
                    (trash / dest.name).rename(dest)  # the previous results back (kept in trash if this fails)
                trash.rmdir()
                raise
            shutil.rmtree(trash)  # the previous results, checked by replace_problem as made by publish
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if reference and profile in PUBLISHED_PROFILES:
            sync_figures(run, FIGURES_DIR)  # the reference run's figures, and no figure of an earlier run
        return manifest


def published_manifest(results_dir: str | Path) -> dict[str, Any]:
    """The ``MANIFEST.json`` of a folder that publish made; raise :class:`PublishError` for any other."""
    marker = Path(results_dir) / MANIFEST
    if not marker.is_file():
        raise PublishError(f"{results_dir} is not a published results folder (no {MANIFEST})")
    try:
        manifest = read_json(marker)
    except ValueError as exc:
        raise PublishError(str(exc)) from exc
    if not isinstance(manifest, dict) or "profile" not in manifest or not isinstance(manifest.get("files"), dict):
        raise PublishError(f"{marker} is not one that publish wrote (no profile and files)")
    return manifest


def restore(results_dir: str | Path, run_dir: str | Path) -> list[str]:
    """Put the published adapters that are missing back into a run folder (``<run>/<stage>/adapter``),
    each copied beside its place and renamed into it once complete; return the stages restored.

    Raises:
        PublishError: ``results_dir`` is not a folder publish made, an adapter file differs from its
            checksum, the folders overlap, or the run was started with another profile or other
            overrides than the published run; nothing is copied then.
        RunFolderBusyError: another process writes to the run folder.
    """
    results, run = Path(results_dir), Path(run_dir)
    manifest = published_manifest(results)
    here, there = run.resolve(), results.resolve()
    if here == there or there in here.parents or here in there.parents:
        raise PublishError(
            f"--run-dir {run} and the published folder {results} overlap: restore into another run folder"
        )
    try:
        recorded, overrides = read_settings(run)
    except RunSettingsError as exc:
        raise PublishError(str(exc)) from exc
    if recorded is not None and recorded != manifest["profile"]:
        raise PublishError(
            f"{run} was started with profile {recorded!r}; {results} holds profile {manifest['profile']!r}"
        )
    if runfiles.settings_path(run).is_file() and overrides != dict(manifest.get("overrides") or {}):
        raise PublishError(
            f"{run} was started with overrides {overrides or 'none'}; the adapters in {results} were trained with "
            f"{manifest.get('overrides') or 'none'}"
        )
    stages = sorted(p.name for p in (results / "adapters").glob("*") if p.is_dir())
    adapter_files = {
        n: d for n, d in manifest["files"].items() if n.startswith(tuple(f"adapters/{s}/" for s in stages))
    }
    changed = _changed_files(results, adapter_files)
    if changed:
        raise PublishError(f"{results / changed[0]} is missing or differs from its checksum in {MANIFEST}")
    restored = []
    with run_lock(run, f"python -m persrm_lib.run.publish --restore --run-dir {run}"):
        for stage in stages:
            target = runfiles.adapter_dir(run, stage)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = Path(tempfile.mkdtemp(prefix=".adapter-", dir=target.parent))
            try:
                shutil.copytree(results / "adapters" / stage, part / "adapter")
                (part / "adapter").rename(target)
            finally:
                shutil.rmtree(part, ignore_errors=True)  # a folder made here: empty unless the copy failed
            restored.append(stage)
    return restored


README_START = (
    "<!-- results:{profile} start (python -m persrm_lib.run.publish --readme README.md writes this block) -->"
)
README_END = "<!-- results:{profile} end -->"


def results_markdown(results_dir: str | Path, n_bootstrap: int = 1000, seed: int = 0) -> str:
    """The README's results block from a published results folder: per judge at notebook 05's main
    exemplar count, accuracy (%) with its 95% bootstrap interval and pair count per benchmark, and the
    rates of :func:`persrm_lib.evaluate.metrics.metric_row`; then the run's targets
    (``tables/eval_goals.md``) and each notebook's wall time."""
    import pandas as pd

    from ..evaluate import metrics

    folder = Path(results_dir)
    manifest = read_json(folder / "MANIFEST.json")
    main_k = read_json(folder / "metrics.json")["05_evaluate"]["main_exemplars"]
    rows = pd.read_csv(runfiles.published_per_pair_path(folder))
    rows = rows[rows["n_exemplars"] == main_k]
    order = list(dict.fromkeys(rows["judge"]))
    by_bench = {
        (r.judge, r.benchmark): f"{100 * r.accuracy:.1f} [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] ({int(r.n)})"
        for r in metrics.summarize(rows, ["judge", "benchmark"], n_bootstrap, seed).itertuples()
    }
    overall = metrics.summarize(rows, "judge", n_bootstrap, seed).set_index("judge")
    benches = sorted(rows["benchmark"].unique())
    rates = {"order-consistent": "order_consistent_accuracy", "A-pref.": "a_preference", "format": "format"}
    rates |= {"consistency": "consistency", "reasoning": "reasoning_agreement"}
    header = ["judge", *[f"{b} acc. % [95% CI] (n)" for b in benches], "all", *rates]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for judge in order:
        cells = [f"`{judge}`", *(by_bench.get((judge, bench), "–") for bench in benches)]
        o = overall.loc[judge]
        cells.append(f"{100 * o['accuracy']:.1f} ({int(o['n'])})")
        cells += ["–" if o.get(c) is None or o[c] != o[c] else f"{o[c]:.2f}" for c in rates.values()]
        lines.append("| " + " | ".join(cells) + " |")
    personas = "personas" in benches
    held_out = "held-out authors and personas" if personas else "held-out authors"
    exemplars = "1 exemplar" if main_k == 1 else f"{main_k} exemplars"
    parts = [f"Profile `{manifest['profile']}`, {exemplars} per test pair, {held_out}.", "", *lines]
    goals = folder / "tables" / "eval_goals.md"
    if goals.is_file():
        goal_table = "persona_goals" if personas else "reference_goals"
        which = ("on the held-out personas " if personas else "") + f"(`persrm_lib.evaluate.metrics.{goal_table}`"
        parts += [
            "",
            f"Targets of the reference run {which}; each difference on the "
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


def _readme_markers(path: Path, profile: str) -> tuple[str, str, str]:
    """The README's text and its results block's markers; :class:`PublishError` when they are missing."""
    text = path.read_text()
    start, end = README_START.format(profile=profile), README_END.format(profile=profile)
    if start not in text or end not in text:
        raise PublishError(f"{path} has no results block: add the lines {start!r} and {end!r}")
    return text, start, end


def update_readme(readme: str | Path, block: str, profile: str = "cpu") -> bool:
    """Replace the text between the README's results markers with ``block``; True when it changed
    (:class:`PublishError` when the markers are missing)."""
    path = Path(readme)
    text, start, end = _readme_markers(path, profile)
    head, rest = text.split(start, 1)
    new = f"{head}{start}\n{block}\n{end}{rest.split(end, 1)[1]}"
    if new != text:
        path.write_text(new)
    return new != text


@returns_status
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m persrm_lib.run.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--profile", default="cpu", help="the profile the run must have been executed with")
    parser.add_argument("--dest", type=Path, default=None, help="default: results/<profile>")
    parser.add_argument(
        "--max-adapter-mb", type=finite_number(0, low_open=True), default=DEFAULT_MAX_ADAPTER_MB, help="size cap"
    )
    parser.add_argument(
        "--adapters", type=parse_names, default=",".join(TRAINED_STAGES), help="stages whose adapters to publish"
    )
    parser.add_argument("--readme", type=Path, default=None, help="also rewrite this README's results block")
    parser.add_argument(
        "--restore", action="store_true", help="the other way: copy the published adapters into --run-dir"
    )
    args = parser.parse_args(argv)
    dest = args.dest or RESULTS_DIR / args.profile
    if args.restore:
        try:
            restored = restore(dest, args.run_dir)
        except (PublishError, RunFolderBusyError) as exc:
            return fail(str(exc))
        print(f"restored adapters: {', '.join(restored) or 'none (already present or none published)'}")
        return 0
    stages = tuple(args.adapters)
    unknown = [s for s in stages if s not in TRAINED_STAGES]
    if unknown:
        return fail(f"--adapters: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(TRAINED_STAGES)}")
    if args.readme is not None:  # checked before anything is published
        try:
            _readme_markers(args.readme, args.profile)
        except OSError as exc:
            return fail(f"--readme {args.readme}: {exc.strerror or exc}")
        except PublishError as exc:
            return fail(f"--readme {exc}")
    try:
        manifest = publish(args.run_dir, args.profile, dest, args.max_adapter_mb, stages)
        if args.readme is not None:
            changed = update_readme(args.readme, results_markdown(dest), args.profile)
            print(f"{args.readme}: results block {'updated' if changed else 'unchanged'}")
    except (PublishError, RunFolderBusyError) as exc:
        return fail(str(exc))
    print(f"published {len(manifest['files'])} files to {dest}")
    for stage, why in manifest["adapters_left_out"].items():
        print(f"adapter {stage} left out: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
