"""The GPU check (issue 14): the project's own entry points on one CUDA device, one JSON record per run.

    python benchmarks/device_check.py --out OUT [--data .device/data] [--profile device]
        [--backends transformers,unsloth] [--judge-pairs FILE] [--judge-limit 8] [--budget 480]
        [--set KEY=VALUE ...]

Normally started by ``benchmarks/device_check.sh run OUT`` on the GPU machine (it unpacks the staged
bundle first; see the README, "Checking the GPU path"). In order, each step a subprocess so that a
crash, a hang or Unsloth's patching of transformers stays inside one run:

1. ``python -m persrm_lib.models.registry prepare <model>``: rebuild the model's cache folder (SmolLM2
   from its GGUF) under ``$PERSRM_CACHE``.
2. For each backend: ``python -m persrm_lib.train sft --backend B``, then ``grpo --backend B`` from
   that SFT adapter (another backend's when this one's SFT failed; fresh LoRA when none exists).
3. For each trained adapter: ``python -m persrm_lib.evaluate --judge generative --adapter ...`` on
   ``--judge-limit`` held-out pairs, both orders.

It writes as it goes into OUT: ``environment.json`` (GPU, versions, model preparation), one
``<backend>-<stage>.json`` per training run (status, command, error tail, steps, seconds per step,
tokens/s, peak GPU memory, final loss, GRPO mean reward and format share, then the judge's accuracy,
format rate and order consistency), and ``summary.md`` (a table of the records) at the end. A run that
fails or times out is recorded and the next one still runs; runs that no longer fit ``--budget``
seconds are recorded as skipped. Exit status: 0 when every run and judgement succeeded, else 1.

On a CPU machine the same script checks itself with ``--profile tiny`` (the tiny random model);
``--backends unsloth`` there records the clear refusal of ``--backend unsloth``. Every argument and
input is checked before the first step (:func:`parse_args`): a bad one exits with status 2 and one
line naming it and its range.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persrm_lib.core import runfiles
from persrm_lib.core.cli import Parser, finite_number, whole_number
from persrm_lib.core.config import PROFILES, Profile, get_profile
from persrm_lib.core.jsonl import read_json, write_json_atomic
from persrm_lib.models.backend import BACKENDS
from persrm_lib.models.registry import REGISTERED

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "unsloth",
    "unsloth_zoo",
    "xformers",
    "bitsandbytes",
    "triton",
    "torchao",
)
STAGES = ("sft", "grpo")
ERROR_LINES = 25  # lines of a failed step's output kept in its record
MIN_STEP_SECONDS = 20  # a step that would get less time than this is skipped


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions by distribution name (None when absent), read without importing them."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def gpu_info() -> dict[str, Any]:
    """``gpu`` (device name or ``cpu``), ``gpu_memory_mb``, ``driver`` and ``cuda`` (torch's build)."""
    import torch

    info: dict[str, Any] = {"gpu": "cpu", "gpu_memory_mb": None, "driver": None, "cuda": torch.version.cuda}
    if not torch.cuda.is_available():
        return info
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, gpu_memory_mb=round(props.total_memory / 2**20))
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    return info


class Clock:
    """The time left of the check's budget, in seconds."""

    def __init__(self, budget: float) -> None:
        self.start = time.perf_counter()
        self.budget = budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def run_step(cmd: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one command, streaming its output (prefixed) to ours; kill its process group at ``timeout``.

    Returns:
        ``status`` (``ok``, ``failed`` or ``timeout``), ``returncode``, ``seconds_wall``, ``command``,
        and ``error`` (the last :data:`ERROR_LINES` lines of output) unless it succeeded.
    """
    print(f"$ {shlex.join(cmd)}", flush=True)
    started = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=ERROR_LINES)
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=dict(env) if env is not None else None,
        start_new_session=True,  # its own process group, so a timeout ends its children too
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"  | {line}")
            tail.append(line.rstrip("\n"))
        sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        returncode = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
    reader.join(timeout=10)
    result: dict[str, Any] = {
        "status": "timeout" if timed_out else ("ok" if returncode == 0 else "failed"),
        "returncode": returncode,
        "seconds_wall": round(time.perf_counter() - started, 2),
        "command": shlex.join(cmd),
    }
    if result["status"] != "ok":
        result["error"] = (f"killed after {timeout:.0f} s\n" if timed_out else "") + "\n".join(tail)
    print(f"  -> {result['status']} in {result['seconds_wall']:.1f} s", flush=True)
    return result


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "error": reason}


def judge_pairs_file(data: Path, given: Path | None) -> Path:
    """``--judge-pairs``, else the data's ``test_sotu.jsonl``, else its first ``test_*.jsonl``."""
    if given is not None:
        return given
    folder = runfiles.pairs_path(data, "train").parent
    candidates = [folder / "test_sotu.jsonl", *sorted(folder.glob("test_*.jsonl"))]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no held-out pairs (test_*.jsonl) in {folder}; pass --judge-pairs")


def copy_data(data: Path, run: Path) -> None:
    """Give a backend's run folder the staged inputs: faithful traces and train/validation pairs."""
    for source in (
        runfiles.faithful_traces_path(data),
        runfiles.pairs_path(data, "train"),
        runfiles.pairs_path(data, "validation"),
    ):
        if source.is_file():
            target = run / source.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def train_command(
    python: str, stage: str, profile: Profile, run: Path, backend: str, summary: Path, overrides: Sequence[str]
) -> list[str]:
    cmd = [python, "-m", "persrm_lib.train", stage, "--profile", profile.name, "--run-dir", str(run)]
    cmd += ["--backend", backend, "--summary", str(summary)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def judge_command(
    python: str, profile: Profile, pairs: Path, adapter: Path, limit: int, out: Path, model: str
) -> list[str]:
    return [
        python,
        "-m",
        "persrm_lib.evaluate",
        "--pairs",
        str(pairs),
        "--judge",
        "generative",
        "--model",
        model,
        "--adapter",
        str(adapter),
        "--n-exemplars",
        str(profile.data.n_exemplars),  # as in training
        "--limit",
        str(limit),
        "--max-new-tokens",
        str(profile.model.max_completion_length),
        "--batch-size",
        str(max(1, limit)),
        "--bootstrap",
        "200",
        "--out",
        str(out),
    ]


TRAIN_FIELDS = (
    "backend",
    "steps",
    "seconds",
    "seconds_per_step",
    "num_tokens",
    "tokens_per_second",
    "peak_gpu_memory_mb",
    "final_loss",
    "mean_reward",
    "format_rate",
    "examples",
    "adapter_dir",
)


def training_figures(summary_path: Path) -> dict[str, Any]:
    """The figures of a ``python -m persrm_lib.train --summary`` file; GRPO's sampling format share is
    renamed ``train_format_rate`` (``format_rate`` is the judge's)."""
    summary = read_json(summary_path)
    figures = {k: summary.get(k) for k in TRAIN_FIELDS}
    figures["train_format_rate"] = figures.pop("format_rate")
    return figures


def judge_figures(result_path: Path) -> dict[str, Any]:
    """Accuracy, format rate, order consistency and A-preference of an evaluation result file."""
    document = read_json(result_path)
    overall = document["metrics"]["overall"]
    return {k: overall.get(k) for k in ("n", "accuracy", "format", "consistency", "prefers_a")} | {
        "seconds": document.get("seconds")
    }


def record_path(out: Path, backend: str, stage: str) -> Path:
    return out / f"{backend}-{stage}.json"


def summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of the records: one row per backend and stage."""
    columns = (
        ("backend", "backend"),
        ("stage", "stage"),
        ("status", "status"),
        ("steps", "steps"),
        ("s/step", "seconds_per_step"),
        ("tokens/s", "tokens_per_second"),
        ("peak MiB", "peak_gpu_memory_mb"),
        ("final loss", "final_loss"),
        ("reward", "mean_reward"),
        ("accuracy", "accuracy"),
        ("format", "format_rate"),
    )
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for rec in records:
        cells = []
        for _, key in columns:
            value = rec.get(key) if key != "backend" else rec.get("backend") or rec.get("backend_requested")
            cells.append("–" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, every argument and input checked before the first step; a bad one exits with
    status 2 and one line naming it and its allowed range (:class:`persrm_lib.core.cli.Parser`)."""
    p = Parser(prog="benchmarks/device_check.py", description=__doc__.split("\n\n")[0])
    seconds = finite_number(MIN_STEP_SECONDS)  # a step given less time than this is skipped
    p.add_argument("--out", required=True, type=Path, help="folder for the JSON records (created)")
    p.add_argument("--data", type=Path, default=Path(".device/data"), help="a run folder holding the staged data/")
    p.add_argument("--profile", default="device", choices=sorted(PROFILES), help="profile of every run")
    p.add_argument("--backends", default="transformers,unsloth", help="comma-separated, run in this order")
    p.add_argument("--judge-pairs", type=Path, help="held-out pairs (default: the data's test_sotu.jsonl)")
    p.add_argument(
        "--judge-limit", type=whole_number(1), default=8, help="pairs judged per adapter (each in both orders)"
    )
    p.add_argument("--budget", type=seconds, default=480, help="seconds for the whole check; later runs are skipped")
    p.add_argument("--train-timeout", type=seconds, default=200, help="seconds per training run at most")
    p.add_argument("--judge-timeout", type=seconds, default=90, help="seconds per judgement at most")
    p.add_argument("--work", type=Path, help="where the scratch folder goes (default: the system temp folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override for training")
    p.add_argument("--python", default=sys.executable, help="interpreter of the steps")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        p.error(f"argument --backends: {', '.join(unknown) or 'none given'}; choose from {', '.join(BACKENDS)}")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"argument --out: {args.out} is a file; name a folder for the records (created)")
    if args.work is not None and not args.work.is_dir():
        p.error(f"argument --work: {args.work} is not a folder")
    if shutil.which(args.python) is None:
        p.error(f"argument --python: {args.python} is not an executable")
    traces = runfiles.faithful_traces_path(args.data.resolve())
    if not traces.is_file():
        p.error(f"argument --data: no {traces}: stage the data first (device_check.sh stage)")
    if args.judge_pairs is not None and not args.judge_pairs.is_file():
        p.error(f"argument --judge-pairs: {args.judge_pairs} does not exist")
    try:
        judge_pairs_file(args.data.resolve(), args.judge_pairs)
    except FileNotFoundError as exc:
        p.error(f"argument --data: {exc}")
    from persrm_lib.train.cli import parse_set

    try:
        get_profile(args.profile, parse_set(args.set))  # what each training run will be given
    except KeyError as exc:  # an unknown setting name
        p.error(f"argument --set: {exc.args[0]}")
    except ValueError as exc:  # a malformed item, a value of the wrong type or out of its range
        p.error(f"argument --set: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget)
    profile = get_profile(args.profile)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="persrm-device-", dir=args.work))  # run folders, summaries, results
    data = args.data.resolve()
    pairs = judge_pairs_file(data, args.judge_pairs).resolve()

    environment: dict[str, Any] = {
        **gpu_info(),
        "versions": versions(),
        "profile": profile.name,
        "overrides": list(args.set),
        "model": profile.model.name,
        "data": str(args.data),
        "judge_pairs": str(pairs),
        "judge_limit": args.judge_limit,
        "budget_seconds": args.budget,
    }
    if profile.model.name in REGISTERED:
        prep = run_step([args.python, "-m", "persrm_lib.models.registry", "prepare", profile.model.name], clock.left())
        environment["prepare_model"] = prep
    write_json_atomic(environment, out / "environment.json")
    base = {k: environment[k] for k in ("gpu", "gpu_memory_mb", "driver", "cuda", "versions", "profile", "overrides")}

    records: dict[tuple[str, str], dict[str, Any]] = {}
    adapters: dict[tuple[str, str], Path] = {}

    def save(key: tuple[str, str]) -> None:
        write_json_atomic(records[key], record_path(out, *key))

    # Phase 1: training, both stages on every backend (the figures the check is for).
    for stage in STAGES:
        for backend in args.backends:
            run = work / "runs" / backend
            if stage == "sft":
                copy_data(data, run)
            key = (backend, stage)
            summary = work / "summaries" / f"{backend}-{stage}.json"
            cmd = train_command(args.python, stage, profile, run, backend, summary, args.set)
            if stage == "grpo":
                own = adapters.get((backend, "sft"))
                other = next((a for (b, s), a in adapters.items() if s == "sft"), None)
                start = own or other
                cmd += ["--sft-adapter", str(start)] if start else ["--no-sft"]
            records[key] = {"backend_requested": backend, "stage": stage, **base}
            if stage == "grpo":
                records[key]["from_sft"] = str(start) if start else None
            budget = min(args.train_timeout, clock.left())
            step = run_step(cmd, budget) if budget >= MIN_STEP_SECONDS else skipped("out of time (--budget)")
            records[key].update(step)
            if step["status"] == "ok" and summary.is_file():
                records[key].update(training_figures(summary))
                adapters[key] = Path(records[key]["adapter_dir"])
            save(key)

    # Phase 2: judge each trained adapter on the held-out pairs (GRPO adapters first).
    for stage in reversed(STAGES):
        for backend in args.backends:
            key = (backend, stage)
            if key not in adapters:
                records[key]["judge"] = skipped("no adapter: training did not succeed")
                save(key)
                continue
            result = work / "judge" / f"{backend}-{stage}.json"
            cmd = judge_command(
                args.python, profile, pairs, adapters[key], args.judge_limit, result, profile.model.name
            )
            budget = min(args.judge_timeout, clock.left())
            step = run_step(cmd, budget) if budget >= MIN_STEP_SECONDS else skipped("out of time (--budget)")
            judge: dict[str, Any] = {"pairs_file": str(pairs), **step}
            if step["status"] == "ok":
                judge.update(judge_figures(result))
                records[key].update(accuracy=judge["accuracy"], format_rate=judge["format"])
            records[key]["judge"] = judge
            save(key)

    ordered = [records[(b, s)] for b in args.backends for s in STAGES]
    table = summary_table(ordered)
    (out / "summary.md").write_text(
        f"Device check on {environment['gpu']}, profile {profile.name}, {time.strftime('%Y-%m-%d %H:%M')}\n\n{table}"
    )
    print(table, flush=True)
    all_ok = all(r.get("status") == "ok" and r.get("judge", {}).get("status") == "ok" for r in ordered)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
