"""Evaluate a judge on any file of pairs in the canonical format (PersRM-R1 §4).

Command line::

    python -m persrm_lib.evaluate --pairs FILE.jsonl --judge NAME [--model M] [--adapter PATH]
        [--n-exemplars K] [--limit N] [--seed S] [--train-pairs TRAIN.jsonl] --out RESULT.json

It reads the pairs strictly (:func:`persrm_lib.data.pairs.read_pairs`), scores each pair and the same
pair with A and B swapped (position consistency), writes per-pair results and the metrics to
``RESULT.json`` atomically, and prints as its LAST line::

    accuracy=0.712 n=300 format=0.99 judge=NAME

Bad input (a malformed line, a label other than a/b, a missing field, an empty file, an adapter
that does not fit the model, too few exemplars) exits with code 2 and the message on stderr.

Judges that learn from data (``char-ngram``, ``function-words``, ``scalar-rm``) are fitted on
``--train-pairs``. Without it, ``char-ngram`` and ``function-words`` fit their unsupervised
statistics (vocabulary, idf, z-scores) on the evaluated pairs' texts -- labels are never read --
and the result records that; ``scalar-rm`` needs ``--train-pairs``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import runfiles
from ..core.jsonl import write_json_atomic, write_jsonl_atomic
from ..data.pairs import read_pairs
from . import metrics
from .judges import JUDGES, MODEL_JUDGES, Judge, exemplars_of, make_judge, swap_pair

RESULT_FIELDS = (
    "id",
    "benchmark",
    "judge",
    "n_exemplars",
    "label",
    "positive_kind",
    "negative_kind",
    "genre",
    "author",
    "s_a",
    "s_b",
    "preferred",
    "correct",
    "format_ok",
    "swapped_s_a",
    "swapped_s_b",
    "swapped_preferred",
    "swapped_format_ok",
    "completion",
    "swapped_completion",
)


class EvaluationInputError(ValueError):
    """Input the evaluation cannot use; the command line exits with code 2 on it."""


def benchmark_name(path: str | Path) -> str:
    """``test_sotu.jsonl`` -> ``sotu``; any other file -> its stem.

    >>> benchmark_name("runs/smoke/data/pairs/test_aaac.jsonl"), benchmark_name("mine.jsonl")
    ('aaac', 'mine')
    """
    stem = Path(path).stem
    return stem[len("test_") :] if stem.startswith("test_") and len(stem) > len("test_") else stem


def select_pairs(pairs: Sequence[Mapping[str, Any]], limit: int | None, seed: int = 0) -> list[Mapping[str, Any]]:
    """``limit`` pairs drawn without replacement with ``seed``, kept in file order (all when None).

    >>> [p["id"] for p in select_pairs([{"id": i} for i in range(5)], 2, seed=0)]
    [2, 4]
    """
    if limit is None or limit >= len(pairs):
        return list(pairs)
    if limit < 1:
        raise EvaluationInputError(f"--limit must be at least 1, got {limit}")
    # a prefix of one seeded permutation: a smaller draw is a subset of a larger one with the same seed,
    # so judges run on different budgets (loglik, scalar-rm, the generative stages) share their pairs
    chosen = np.sort(np.random.default_rng(seed).permutation(len(pairs))[:limit])
    return [pairs[int(i)] for i in chosen]


def _check_exemplar_counts(pairs: Sequence[Mapping[str, Any]], n_exemplars: int | None) -> None:
    for pair in pairs:
        try:
            exemplars_of(pair, n_exemplars)
        except ValueError as exc:
            raise EvaluationInputError(f"--n-exemplars {n_exemplars}: {exc}") from exc


def evaluate_pairs(
    judge: Judge,
    pairs: Sequence[Mapping[str, Any]],
    n_exemplars: int | None = None,
    swap: bool = True,
    benchmark: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every pair (and, with ``swap``, the pair with A and B exchanged) and tabulate.

    A position-invariant judge (each response scored on its own) gets the swapped verdict by
    exchanging its two scores -- exactly what scoring the swapped pair would return; every other
    judge scores the swapped pairs for real.

    Args:
        judge: a fitted judge.
        pairs: canonical pairs.
        n_exemplars: exemplars shown per pair (the first K); None: each pair's ``n_exemplars``.
        swap: also judge the swapped pairs (position consistency).
        benchmark: the benchmark column's value when a pair has no ``benchmark`` field.
        batch_size: pairs per ``score_batch`` call.
        progress: show a tqdm bar.

    Returns:
        One row per pair with the columns of :data:`RESULT_FIELDS`.

    >>> from persrm_lib.evaluate.judges import make_judge
    >>> pair = {"id": "p", "query": "Q", "exemplars": ["ab ab ab"], "response_a": "ab ab", "response_b": "zz",
    ...         "label": "a"}
    >>> evaluate_pairs(make_judge("char-ngram").fit([pair]), [pair])[["correct", "swapped_preferred"]].values.tolist()
    [[True, 'b']]
    """
    from tqdm import tqdm

    _check_exemplar_counts(pairs, n_exemplars)
    pairs = list(pairs)
    verdicts: list[Any] = []
    swapped: list[Any] = []
    batches = range(0, len(pairs), batch_size)
    for begin in tqdm(batches, desc=f"judge {judge.name}", disable=not progress):
        chunk = pairs[begin : begin + batch_size]
        if swap and not judge.position_invariant:  # both orders in one call: the judge batches them together
            both = judge.score_batch(chunk + [swap_pair(p) for p in chunk], n_exemplars)
            verdicts += both[: len(chunk)]
            swapped += both[len(chunk) :]
        else:
            verdicts += judge.score_batch(chunk, n_exemplars)
    rows = []
    for k, (pair, verdict) in enumerate(zip(pairs, verdicts, strict=True)):
        row = {
            "id": pair.get("id"),
            "benchmark": pair.get("benchmark") or benchmark or "pairs",
            "judge": judge.name,
            "n_exemplars": len(exemplars_of(pair, n_exemplars)),
            "label": pair["label"],
            "positive_kind": pair.get("positive_kind"),
            "negative_kind": pair.get("negative_kind"),
            "genre": pair.get("genre"),
            "author": pair.get("author"),
            "s_a": verdict.s_a,
            "s_b": verdict.s_b,
            "preferred": verdict.preferred,
            "correct": verdict.preferred == pair["label"],
            "format_ok": verdict.format_ok,
            "swapped_s_a": None,
            "swapped_s_b": None,
            "swapped_preferred": None,
            "swapped_format_ok": None,
            "completion": verdict.completion,
            "swapped_completion": None,
        }
        if swap:
            if judge.position_invariant:
                s_a, s_b, preferred = verdict.s_b, verdict.s_a, {"a": "b", "b": "a"}.get(verdict.preferred or "")
                row.update(
                    swapped_s_a=s_a, swapped_s_b=s_b, swapped_preferred=preferred, swapped_format_ok=verdict.format_ok
                )
            else:
                other = swapped[k]
                row.update(
                    swapped_s_a=other.s_a,
                    swapped_s_b=other.s_b,
                    swapped_preferred=other.preferred,
                    swapped_format_ok=other.format_ok,
                    swapped_completion=other.completion,
                )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RESULT_FIELDS))


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy types to Python, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-safe records (NaN -> null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def metrics_document(results: pd.DataFrame, n_bootstrap: int = metrics.N_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Overall metrics and every breakdown of :data:`persrm_lib.evaluate.metrics.BREAKDOWNS` as records."""
    tables = metrics.breakdowns(results, n_bootstrap=n_bootstrap, seed=seed)
    overall = records(tables.pop("overall"))[0]
    return {"overall": overall, "by": {name: records(table) for name, table in tables.items()}}


def summary_line(overall: Mapping[str, Any], judge: str) -> str:
    """The one-line summary the command prints last.

    >>> summary_line({"accuracy": 0.7123, "n": 300, "format": 0.99}, "char-ngram")
    'accuracy=0.712 n=300 format=0.99 judge=char-ngram'
    """
    acc = overall.get("accuracy")
    fmt = overall.get("format")
    acc_text = "nan" if acc is None else f"{acc:.3f}"
    fmt_text = "nan" if fmt is None else f"{fmt:.2f}"
    return f"accuracy={acc_text} n={overall['n']} format={fmt_text} judge={judge}"


def build_judge(
    name: str,
    model: str | None = None,
    adapter: str | None = None,
    seed: int = 0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    scalar_rm_steps: int = 20,
) -> Judge:
    """A judge from command-line settings; raises :class:`EvaluationInputError` on a bad mix."""
    if name not in JUDGES:
        raise EvaluationInputError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    if name in MODEL_JUDGES and not model:
        raise EvaluationInputError(f"--judge {name} needs --model (a registry name, hub id or model folder)")
    if model and name in MODEL_JUDGES:
        from ..models.registry import REGISTERED, ModelRegistryError, resolve

        if model not in REGISTERED:  # registered names are built on first load; check the rest now
            try:
                resolve(model)
            except ModelRegistryError as exc:
                raise EvaluationInputError(str(exc)) from exc
    if adapter and name != "generative":
        raise EvaluationInputError(f"--adapter applies to --judge generative only, not {name}")
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise EvaluationInputError(f"--adapter {adapter}: no PEFT adapter there (adapter_config.json is missing)")
    if name == "random":
        return make_judge(name, seed=seed)
    if name == "generative":
        return make_judge(name, model=model, adapter=adapter, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if name == "loglik":
        return make_judge(name, model=model, batch_size=batch_size)
    if name == "scalar-rm":
        return make_judge(name, model=model, seed=seed, max_steps=scalar_rm_steps)
    return make_judge(name)


def fit_judge(
    judge: Judge, train_pairs: Sequence[Mapping[str, Any]] | None, eval_pairs: Sequence[Mapping[str, Any]]
) -> str:
    """Fit ``judge`` and say on what: the training pairs, or (label-free) the evaluated texts."""
    if train_pairs:
        judge.fit(train_pairs)
        return f"training pairs ({len(train_pairs)})"
    if judge.name == "scalar-rm":
        raise EvaluationInputError("--judge scalar-rm is trained on labelled pairs: pass --train-pairs TRAIN.jsonl")
    if judge.name in ("char-ngram", "function-words"):
        unlabelled = [{k: v for k, v in p.items() if k != "label"} for p in eval_pairs]
        judge.fit(unlabelled)
        return "evaluated pairs' texts, labels not read (no --train-pairs)"
    return "nothing (no parameters)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command does except printing; returns the result document."""
    from ..data.pairs import PairFormatError
    from .judges import AdapterMismatchError, NotFittedError

    started = time.perf_counter()
    try:
        pairs = select_pairs(read_pairs(args.pairs), args.limit, args.seed)
        train_pairs = read_pairs(args.train_pairs) if args.train_pairs else None
        judge = build_judge(
            args.judge, args.model, args.adapter, args.seed, args.max_new_tokens, args.batch_size, args.scalar_rm_steps
        )
        _check_exemplar_counts(pairs, args.n_exemplars)
        fitted_on = fit_judge(judge, train_pairs, pairs)
        results = evaluate_pairs(
            judge, pairs, args.n_exemplars, swap=not args.no_swap, benchmark=benchmark_name(args.pairs)
        )
    except (PairFormatError, FileNotFoundError, AdapterMismatchError, NotFittedError) as exc:
        raise EvaluationInputError(str(exc)) from exc
    except Exception as exc:
        from ..models.registry import ModelRegistryError

        if isinstance(exc, ModelRegistryError):
            raise EvaluationInputError(str(exc)) from exc
        raise
    document = {
        "pairs_file": str(args.pairs),
        "judge": judge.describe() if hasattr(judge, "describe") else {"judge": judge.name},
        "fitted_on": fitted_on,
        "n_exemplars": args.n_exemplars,
        "limit": args.limit,
        "seed": args.seed,
        "swap": not args.no_swap,
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": metrics_document(results, n_bootstrap=args.bootstrap, seed=args.seed),
        "results": records(results),
    }
    write_json_atomic(document, args.out, ensure_ascii=False, allow_nan=False)
    return document


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m persrm_lib.evaluate", description="Evaluate a judge on a canonical pair file (JSONL)."
    )
    p.add_argument("--pairs", required=True, type=Path, help="pairs to evaluate (canonical JSONL)")
    p.add_argument("--judge", required=True, choices=JUDGES, help="which judge")
    p.add_argument("--model", help="registry name, hub id or model folder (loglik, generative, scalar-rm)")
    p.add_argument("--adapter", help="PEFT adapter folder for --judge generative (e.g. <run>/sft/adapter)")
    p.add_argument(
        "--n-exemplars", type=int, default=None, help="show the first K exemplars (default: each pair's own)"
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate N pairs drawn with --seed (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --limit, the random judge, scalar-rm and the bootstrap")
    p.add_argument("--train-pairs", type=Path, default=None, help="pairs to fit char-ngram, function-words, scalar-rm")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation budget of --judge generative")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass")
    p.add_argument("--scalar-rm-steps", type=int, default=20, help="RewardTrainer steps of --judge scalar-rm")
    p.add_argument("--bootstrap", type=int, default=metrics.N_BOOTSTRAP, help="bootstrap resamples for the intervals")
    p.add_argument("--no-swap", action="store_true", help="skip the A/B-swapped pass (no position consistency)")
    p.add_argument("--out", required=True, type=Path, help="result JSON (written atomically)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input)."""
    args = parser().parse_args(argv)
    if args.n_exemplars is not None and args.n_exemplars < 1:
        print(f"error: --n-exemplars must be at least 1, got {args.n_exemplars}", file=sys.stderr)
        return 2
    try:
        document = run(args)
    except EvaluationInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    print(summary_line(document["metrics"]["overall"], args.judge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---- the evaluation suite of notebook 05 ------------------------------------------------------

STAGES: tuple[str, ...] = ("base", "sft", "rft")  # base zero-shot, SFT-only, SFT+RFT
STAGE_LABELS = {"base": "rm-base", "sft": "rm-sft", "rft": "rm-rft"}
PAPER_ACCURACY = pd.DataFrame(
    {
        "model": ["Qwen2.5-7B SFT+RFT", "Qwen2.5-3B SFT+RFT", "7B SFT only", "7B base"],
        "CCAT": [93.8, 91.8, 86.1, 77.6],
        "CMCC": [94.6, 92.2, 87.7, 75.8],
    }
)  # PersRM-R1 (arXiv 2508.14076) Table 2, three exemplars


@dataclass
class SuiteResult:
    """Everything notebook 05 shows: per-pair rows of every judge, and what was skipped and why."""

    results: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    completion_files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # judge -> wall time


@dataclass(frozen=True)
class SuiteSettings:
    """How much of the suite runs; sized per profile so the smoke run stays within minutes on a CPU."""

    model_pairs: int = 0  # pairs per benchmark for loglik and scalar-rm; 0: all
    generative_pairs: int = 0  # pairs per benchmark for the generative stages (each also judged swapped); 0: all
    generative_counts: tuple[int, ...] = ()  # exemplar counts for the generative stages; (): the profile's
    scalar_rm_steps: int = 50  # RewardTrainer steps
    scalar_rm_batch_size: int = 4  # pairs per RewardTrainer step
    scalar_rm_max_length: int = 512  # tokens per scored sequence (exemplars are cut from the front)


SUITE_SETTINGS: dict[str, SuiteSettings] = {
    "tiny": SuiteSettings(
        model_pairs=2, generative_pairs=2, scalar_rm_steps=2, scalar_rm_batch_size=2, scalar_rm_max_length=256
    ),
    # smoke: every judge and stage runs, on two pairs per benchmark for loglik and scalar-rm and one
    # for each generative stage (a busy 2-core CPU prefills ~200 tokens/s), at the largest exemplar
    # count only: a pipeline check in minutes, not a measurement.
    "smoke": SuiteSettings(
        model_pairs=2,
        generative_pairs=1,
        generative_counts=(3,),
        scalar_rm_steps=2,
        scalar_rm_batch_size=2,
        scalar_rm_max_length=320,
    ),
    # cpu (the reference run): every pair for the cheap baselines, 24 per benchmark for loglik and
    # scalar-rm (12 RewardTrainer steps of 4 pairs), 16 per benchmark for each generative stage at the
    # tables' three exemplars, each also judged swapped (~8 pairs/min batched at 256 new tokens).
    "cpu": SuiteSettings(
        model_pairs=24,
        generative_pairs=16,
        generative_counts=(3,),
        scalar_rm_steps=12,
        scalar_rm_batch_size=4,
        scalar_rm_max_length=384,
    ),
    "paper": SuiteSettings(model_pairs=0, scalar_rm_steps=500, scalar_rm_batch_size=32, scalar_rm_max_length=4096),
}


def suite_settings(
    profile_name: str,
    model_pairs: int = -1,
    generative_counts: str | Sequence[int] = "",
    scalar_rm_steps: int = 0,
    generative_pairs: int = -1,
) -> SuiteSettings:
    """The profile's :class:`SuiteSettings` with notebook overrides (-1, "" and 0 keep the profile's).

    >>> suite_settings("smoke").model_pairs, suite_settings("smoke", model_pairs=0).model_pairs
    (2, 0)
    >>> suite_settings("cpu", generative_counts="1, 3").generative_counts
    (1, 3)
    """
    base = SUITE_SETTINGS.get(profile_name, SuiteSettings())
    changes: dict[str, Any] = {}
    if model_pairs >= 0:
        changes["model_pairs"] = model_pairs
    if generative_pairs >= 0:
        changes["generative_pairs"] = generative_pairs
    counts = (
        tuple(int(k) for k in parse_names(generative_counts))
        if isinstance(generative_counts, str)
        else tuple(generative_counts)
    )
    if counts:
        changes["generative_counts"] = counts
    if scalar_rm_steps > 0:
        changes["scalar_rm_steps"] = scalar_rm_steps
    return replace(base, **changes)


def parse_names(value: str | Sequence[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (notebook parameters may be either).

    >>> parse_names("random, char-ngram"), parse_names(["sft"]), parse_names("")
    (['random', 'char-ngram'], ['sft'], [])
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def load_test_sets(run: Path, benchmarks: Sequence[str]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``data/pairs/test_<benchmark>.jsonl`` of each benchmark that exists, and notes on the rest.

    Raises:
        FileNotFoundError: no test set at all (run 01_synthesize first).
    """
    sets: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for name in benchmarks:
        path = runfiles.pairs_path(run, f"test_{name}")
        if path.is_file():
            sets[name] = read_pairs(path)
        else:
            notes.append(f"benchmark {name}: {path} is missing, skipped")
    if not sets:
        raise FileNotFoundError(
            f"no test pairs under {runfiles.pairs_path(run, 'test_x').parent} for {', '.join(benchmarks)}: run 01_synthesize first"
        )
    return sets, notes


def _usable(pairs: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    return [p for p in pairs if len(p["exemplars"]) >= k]


def _completion_records(frame: pd.DataFrame, stage: str, model: str) -> list[dict[str, Any]]:
    """One record per generated completion (original and swapped order), for 07_behavior_analysis."""
    out = []
    for row in frame.to_dict("records"):
        orders = [("original", row["completion"], row["label"], row["s_a"], row["s_b"], row["preferred"])]
        if isinstance(row.get("swapped_completion"), str):
            swapped_label = "b" if row["label"] == "a" else "a"
            orders.append(
                (
                    "swapped",
                    row["swapped_completion"],
                    swapped_label,
                    row["swapped_s_a"],
                    row["swapped_s_b"],
                    row["swapped_preferred"],
                )
            )
        for order, completion, label, s_a, s_b, preferred in orders:
            out.append(
                {
                    "id": f"{row['id']}:{row['n_exemplars']}:{order}",
                    "pair_id": row["id"],
                    "stage": stage,
                    "model": model,
                    "benchmark": row["benchmark"],
                    "n_exemplars": row["n_exemplars"],
                    "order": order,
                    "label": label,
                    "completion": completion,
                    "scores": None if s_a is None or pd.isna(s_a) else [_plain(s_a), _plain(s_b)],
                    "correct": preferred == label,
                }
            )
    return out


def run_suite(
    run: str | Path,
    profile: Any,
    judges: Sequence[str] = ("random", "char-ngram", "function-words", "embedding", "loglik", "scalar-rm"),
    stages: Sequence[str] = STAGES,
    settings: SuiteSettings | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> SuiteResult:
    """Evaluate baselines and the reward model's stages on every test set of a run folder.

    Args:
        run: the run folder (reads ``data/pairs/train.jsonl``, ``data/pairs/test_<benchmark>.jsonl``,
            ``sft/adapter``, ``rft/adapter``; writes ``eval/completions/<stage>.jsonl``).
        profile: the :class:`persrm_lib.core.config.Profile` (benchmarks, exemplar counts, model, seed).
        judges: baseline judges (names of :data:`persrm_lib.evaluate.judges.JUDGES`, not ``generative``).
        stages: reward-model stages to evaluate: ``base`` (no adapter), ``sft``, ``rft``; a stage
            whose adapter is absent is skipped with a note.
        settings: how many pairs the language-model judges see (drawn with the profile's seed),
            the generative stages' exemplar counts, the scalar reward model's training (default:
            :func:`suite_settings` of the profile).
        max_new_tokens: generation budget (default: the profile's ``model.max_completion_length``).
        batch_size: prompts per forward pass.
        progress: tqdm bars.

    Returns:
        A :class:`SuiteResult` whose ``results`` hold one row per (judge, benchmark, exemplar
        count, pair), with a ``stage`` column (``baseline``, ``base``, ``sft``, ``rft``).
    """
    from ..models.registry import load_model

    run = Path(run)
    seed = profile.seed
    counts = sorted(set(profile.data.eval_exemplar_counts))
    settings = settings or suite_settings(profile.name)
    model_pairs = settings.model_pairs
    gen_counts = sorted(set(settings.generative_counts or counts))
    test_sets, notes = load_test_sets(run, profile.data.benchmarks)
    for name, pairs in test_sets.items():
        for k in counts:
            short = len(pairs) - len(_usable(pairs, k))
            if short:
                notes.append(
                    f"benchmark {name}: {short} of {len(pairs)} pairs have fewer than {k} exemplars, left out at k={k}"
                )
    train_path = runfiles.pairs_path(run, "train")
    train_pairs = read_pairs(train_path) if train_path.is_file() else None
    frames: list[pd.DataFrame] = []
    seconds: dict[str, float] = {}
    shared: tuple[Any, Any] | None = None

    def base_model() -> tuple[Any, Any]:
        nonlocal shared
        if shared is None:
            shared = load_model(profile.model.name)
        return shared

    def evaluate_all(judge: Judge, label: str, stage: str, ks: Sequence[int], limit: int) -> pd.DataFrame:
        parts = []
        for bench, pairs in test_sets.items():
            for k in ks:
                subset = select_pairs(_usable(pairs, k), limit or None, seed)
                if subset:
                    parts.append(
                        evaluate_pairs(judge, subset, k, benchmark=bench, batch_size=batch_size, progress=progress)
                    )
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(RESULT_FIELDS))
        return frame.assign(judge=label, stage=stage)

    for name in judges:
        if name == "generative":
            notes.append("judge generative: evaluated through `stages`, not `judges`")
            continue
        started = time.perf_counter()
        if name in ("char-ngram", "function-words", "scalar-rm") and not train_pairs:
            notes.append(f"judge {name}: {train_path} is missing, so it cannot be fitted; skipped")
            continue
        if name == "random":
            judge = make_judge(name, seed=seed)
        elif name == "loglik":
            judge = make_judge(name, model=profile.model.name, loaded=base_model(), batch_size=batch_size)
        elif name == "scalar-rm":
            judge = make_judge(
                name,
                model=profile.model.name,
                max_steps=settings.scalar_rm_steps,
                batch_size=settings.scalar_rm_batch_size,
                max_length=settings.scalar_rm_max_length,
                seed=seed,
            )
        elif name == "embedding":
            judge = make_judge(name, cache_path=runfiles.data_dir(run) / "embeddings.npz")
        else:
            judge = make_judge(name)
        if train_pairs:
            judge.fit(train_pairs)
        limit = model_pairs if name in MODEL_JUDGES else 0
        frames.append(evaluate_all(judge, name, "baseline", counts, limit))
        seconds[name] = time.perf_counter() - started

    completion_files: list[Path] = []
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
        adapter = None if stage == "base" else runfiles.adapter_dir(run, stage)
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            notes.append(
                f"stage {stage}: no adapter at {adapter}, skipped (run {'03_sft' if stage == 'sft' else '04_rft_grpo'})"
            )
            continue
        started = time.perf_counter()
        judge = make_judge(
            "generative",
            model=profile.model.name,
            adapter=adapter,
            max_new_tokens=max_new_tokens or profile.model.max_completion_length,
            batch_size=batch_size,
            name=STAGE_LABELS[stage],
            loaded=base_model() if adapter is None else None,
        )
        frame = evaluate_all(judge, STAGE_LABELS[stage], stage, gen_counts, settings.generative_pairs)
        frames.append(frame)
        path = runfiles.stage_dir(run, "eval") / "completions" / f"{stage}.jsonl"
        write_jsonl_atomic(_completion_records(frame, stage, profile.model.name), path)
        completion_files.append(path)
        seconds[STAGE_LABELS[stage]] = time.perf_counter() - started
        del judge
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*RESULT_FIELDS, "stage"])
    return SuiteResult(results=results, notes=notes, completion_files=completion_files, seconds=seconds)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub pipe table (no dependency on ``tabulate``); NaN cells are written as ``–``.

    >>> print(to_markdown(pd.DataFrame({"x": [1.5]}, index=["j"])))
    |   | x |
    |---|---|
    | j | 1.5 |
    """
    table = frame.reset_index() if index else frame
    header = ["" if index and i == 0 and table.columns[0] == "index" else str(c) for i, c in enumerate(table.columns)]
    if index and frame.index.name:
        header[0] = str(frame.index.name)
    lines = ["| " + " | ".join(h if h else " " for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join("–" if _missing(v) else str(v) for v in row) + " |")
    return "\n".join(lines)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def write_tables(
    results: pd.DataFrame, eval_dir: str | Path, main_k: int, n_bootstrap: int = metrics.N_BOOTSTRAP, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The paper-style tables, each saved as ``<name>.csv`` and ``<name>.md`` under ``eval_dir``.

    - ``accuracy_by_benchmark``: judges and reward-model stages x benchmark, at ``main_k`` exemplars.
    - ``accuracy_by_exemplars``: judges x exemplar count (all benchmarks pooled).
    - ``accuracy_by_negative_kind``: judges x negative-sampling strategy, at ``main_k``.
    - ``summary``: the long table of every breakdown (n, accuracy, interval, format, consistency).

    Returns:
        The tables by name.
    """
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    main = results[results["n_exemplars"] == main_k]
    tables = {
        "accuracy_by_benchmark": metrics.accuracy_table(main, "judge", "benchmark"),
        "accuracy_by_exemplars": metrics.accuracy_table(results, "judge", "n_exemplars"),
        "accuracy_by_negative_kind": metrics.accuracy_table(
            main.fillna({"negative_kind": "unknown"}), "judge", "negative_kind"
        ),
    }
    long = []
    for column, table in metrics.breakdowns(results, extra=("judge",), n_bootstrap=n_bootstrap, seed=seed).items():
        long.append(
            table.assign(breakdown=column).rename(columns={column: "value"})
            if column != "overall"
            else table.assign(breakdown="overall", value="all")
        )
    summary = pd.concat(long, ignore_index=True)
    tables["summary"] = summary[
        ["breakdown", "value", "judge", "n", "accuracy", "ci_low", "ci_high", "format", "consistency", "prefers_a"]
    ]
    for name, table in tables.items():
        write_table(table.round(4) if name == "summary" else table, eval_dir, name, index=name != "summary")
    results.drop(columns=["completion", "swapped_completion"]).to_csv(eval_dir / "per_pair.csv", index=False)
    return tables


def write_table(table: pd.DataFrame, folder: str | Path, name: str, index: bool = True) -> None:
    """Save ``table`` as ``<folder>/<name>.csv`` and ``<name>.md`` (GitHub markdown)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv", index=index)
    (folder / f"{name}.md").write_text(to_markdown(table, index=index) + "\n")


def plot_paired_differences(paired: pd.DataFrame, ax: Any, model: str = "the reward model") -> Any:
    """Accuracy of the reward model minus each baseline's, per group, with paired 95% intervals.

    Args:
        paired: :func:`persrm_lib.evaluate.metrics.paired_comparison` rows.
        ax: a matplotlib axis.
        model: the compared judge's name, for the axis label.

    Returns:
        ``ax``; points right of zero are groups where the reward model is ahead.
    """
    groups = list(dict.fromkeys(paired["group"]))
    baselines = list(dict.fromkeys(paired["baseline"]))
    step = 0.8 / max(1, len(baselines))
    for b, baseline in enumerate(baselines):
        rows = paired[paired["baseline"] == baseline].set_index("group").reindex(groups)
        ys = np.arange(len(groups)) - 0.4 + step * (b + 0.5)
        low = (rows["difference"] - rows["diff_low"]).clip(lower=0)
        high = (rows["diff_high"] - rows["difference"]).clip(lower=0)
        ax.errorbar(rows["difference"], ys, xerr=[low, high], fmt="o", ms=4, capsize=2, lw=1, label=baseline)
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel(f"accuracy of {model} minus baseline (shared pairs)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return ax


def plot_accuracy_bars(table: pd.DataFrame, order: Sequence[str], ax: Any, group: str = "benchmark") -> Any:
    """Grouped bars of accuracy with 95% interval whiskers and value labels.

    Args:
        table: :func:`persrm_lib.evaluate.metrics.summarize` rows with ``judge``, ``group``, ``accuracy``,
            ``ci_low`` and ``ci_high``.
        order: the judges, left to right (a judge absent from ``table`` leaves a gap).
        ax: a matplotlib axis.
        group: the column whose values are the bars within a judge.

    Returns:
        ``ax``.
    """
    groups = sorted(table[group].unique(), key=str)
    width = 0.8 / max(1, len(groups))
    for g, value in enumerate(groups):
        rows = table[table[group] == value].set_index("judge")
        xs = [i for i, judge in enumerate(order) if judge in rows.index]
        if not xs:
            continue
        picked = rows.loc[[order[i] for i in xs]]
        positions = np.array(xs, dtype=float) - 0.4 + width * (g + 0.5)
        bars = ax.bar(positions, picked["accuracy"], width=width, label=str(value))
        low = (picked["accuracy"] - picked["ci_low"]).clip(lower=0)
        high = (picked["ci_high"] - picked["accuracy"]).clip(lower=0)
        ax.errorbar(positions, picked["accuracy"], yerr=[low, high], fmt="none", ecolor="black", capsize=2, lw=1)
        ax.bar_label(bars, labels=[f"{a:.2f}" for a in picked["accuracy"]], fontsize=6, padding=1)
    ax.set_xticks(range(len(order)), list(order))
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.legend(title=group, fontsize=8)
    return ax
