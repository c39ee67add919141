"""Evaluate a judge on any file of pairs in the canonical format (PersRM-R1 §4).

Command line::

    python -m persrm_lib.evaluate --pairs FILE.jsonl --judge NAME [--model M] [--adapter PATH]
        [--n-exemplars K] [--limit N] [--seed S] [--train-pairs TRAIN.jsonl] [--orders both|original]
        [--strip-think] [--count-too-long] [--stop-unparsable] --out RESULT.json

It writes the per-pair rows and the metrics to ``RESULT.json`` atomically and prints
:func:`summary_line` last. Bad input exits with code 2 and one line on stderr, before the first
model call; a failure after judging began writes the pairs judged so far to
``RESULT.partial.json`` and exits with code 1. Without ``--train-pairs``, judges that learn from
texts alone are fitted on the evaluated pairs' texts (labels never read).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.cli import Parser, fail, files_problem, partial_path, returns_status, seed_number, whole_number
from ..core.jsonl import write_json_atomic
from ..data.pairs import PairFormatError, read_pairs
from ..models.registry import REGISTERED, resolve
from ..train.adapters import MODEL_INPUT_ERRORS
from . import metrics
from .judges import ADAPTER_JUDGES, JUDGES, MODEL_JUDGES, Judge, NotFittedError, make_judge, swap_pair
from .judging import (
    ORDERS,
    EvaluationInputError,
    EvaluationInterrupted,
    check_exemplar_counts,
    evaluate_pairs,
    select_pairs,
)
from .records import json_records


class EvaluationFailedError(RuntimeError):
    """Judging failed after work began; what was finished is in the partial results file the message names."""


INPUT_ERRORS = (*MODEL_INPUT_ERRORS, PairFormatError, NotFittedError)  # exit 2, whether found up front or while judging


def benchmark_name(path: str | Path) -> str:
    """``test_sotu.jsonl`` -> ``sotu``; any other file -> its stem."""
    stem = Path(path).stem
    return stem.removeprefix("test_") or stem


def summary_line(overall: Mapping[str, Any], judge: str) -> str:
    """The one-line summary the command prints last (``nan`` where a rate is undefined or missing)."""

    def text(key: str, digits: int) -> str:
        value = overall.get(key)
        return "nan" if value is None or value != value else f"{value:.{digits}f}"

    return (
        f"accuracy={text('accuracy', 3)} n={overall['n']} format={text('format', 2)} "
        f"order_consistent={text('order_consistent_accuracy', 3)} a_preference={text('a_preference', 2)} "
        f"reasoning={text('reasoning_agreement', 2)} too_long={overall.get('too_long', 0)} judge={judge}"
    )


def build_judge(
    name: str,
    model: str | None = None,
    adapter: str | None = None,
    seed: int = 0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    scalar_rm_steps: int = 20,
    strip_think: bool = False,
    count_too_long: bool = False,
    stop_unparsable: bool = False,
) -> Judge:
    """A judge from command-line settings (``name`` checked by argparse; :func:`persrm_lib.evaluate.judges.make_judge`).

    Raises:
        ModelRegistryError: an unknown model. EvaluationInputError: a model judge without ``model``,
            an adapter for a judge that takes none or a folder without ``adapter_config.json``, or
            ``strip_think``/``count_too_long``/``stop_unparsable`` for another judge than ``generative``,
            or ``stop_unparsable`` with ``strip_think``.
    """
    if name in MODEL_JUDGES and not model:
        raise EvaluationInputError(f"--judge {name} needs --model (a registry name, hub id or model folder)")
    if name in MODEL_JUDGES and model not in REGISTERED:  # registered names are built on first load
        resolve(model)  # ModelRegistryError: one of INPUT_ERRORS
    if adapter and name not in ADAPTER_JUDGES:
        raise EvaluationInputError(f"--adapter applies to --judge {', '.join(ADAPTER_JUDGES)} only, not {name}")
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise EvaluationInputError(f"--adapter {adapter}: no PEFT adapter there (adapter_config.json is missing)")
    generative = {"strip_think": strip_think, "count_too_long": count_too_long, "stop_unparsable": stop_unparsable}
    for flag, value in generative.items():
        if value and name != "generative":
            raise EvaluationInputError(f"--{flag.replace('_', '-')} applies to --judge generative only, not {name}")
    if strip_think and stop_unparsable:
        raise EvaluationInputError(
            "--stop-unparsable and --strip-think exclude each other: a leading <think> block would end the completion"
        )
    return make_judge(
        name,
        model=model,
        adapter=adapter,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        scalar_rm_steps=scalar_rm_steps,
        **(generative if name == "generative" else {}),
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command does except printing; returns the result document.

    Raises:
        EvaluationInputError: bad input (exit 2), found before the first model call.
        EvaluationFailedError: judging or the summary failed after work began (exit 1); the pairs
            judged so far are in :func:`persrm_lib.core.cli.partial_path` of ``--out``.
    """
    started = time.perf_counter()
    try:
        pairs = select_pairs(read_pairs(args.pairs), args.limit, args.seed)
        train_pairs = read_pairs(args.train_pairs) if args.train_pairs else None
        judge = build_judge(
            args.judge,
            args.model,
            args.adapter,
            args.seed,
            args.max_new_tokens,
            args.batch_size,
            args.scalar_rm_steps,
            strip_think=args.strip_think,
            count_too_long=args.count_too_long,
            stop_unparsable=args.stop_unparsable,
        )
        check_exemplar_counts(pairs, args.n_exemplars)
        check = getattr(judge, "check_inputs", None)  # the generative judge: adapter record, chat template, lengths
        if check is not None:
            both = [swap_pair(p) for p in pairs] if args.orders == "both" else []
            try:
                check(list(pairs) + both, args.n_exemplars)
            except ValueError as exc:  # also an adapter record that cannot be read, a prompt over max_prompt_tokens
                raise EvaluationInputError(str(exc)) from exc
        fitted_on = "nothing (no parameters)"
        if train_pairs:
            judge.fit(train_pairs)
            fitted_on = f"training pairs ({len(train_pairs)})"
        elif judge.learns_from == "labels":
            raise EvaluationInputError(
                f"--judge {judge.name} is trained on labelled pairs: pass --train-pairs TRAIN.jsonl"
            )
        elif judge.learns_from == "texts":  # label-free: the evaluated pairs' texts
            judge.fit([{k: v for k, v in p.items() if k != "label"} for p in pairs])
            fitted_on = "evaluated pairs' texts, labels not read (no --train-pairs)"
    except INPUT_ERRORS as exc:
        raise EvaluationInputError(str(exc)) from exc
    document: dict[str, Any] = {
        "pairs_file": str(args.pairs),
        "judge": {"judge": judge.name},
        "fitted_on": fitted_on,
        "n_exemplars": args.n_exemplars,
        "limit": args.limit,
        "seed": args.seed,
        "orders": args.orders,
        # True: the swapped order's verdict is the original's mirrored, so order consistency holds by construction
        "position_invariant": bool(judge.position_invariant),
    }
    try:
        results = evaluate_pairs(
            judge, pairs, args.n_exemplars, orders=args.orders, benchmark=benchmark_name(args.pairs)
        )
    except EvaluationInterrupted as exc:
        where = _write_partial(document, exc.results, args, exc.cause, exc.n_pairs)
        if isinstance(exc.cause, INPUT_ERRORS):
            raise EvaluationInputError(
                f"{exc.cause}; the {len(exc.results)} pairs judged before are in {where}"
            ) from exc
        raise EvaluationFailedError(
            f"judging stopped after {len(exc.results)} of {exc.n_pairs} pairs ({exc}); those are in {where}"
        ) from exc
    except INPUT_ERRORS as exc:  # in the first batch: nothing judged yet
        raise EvaluationInputError(str(exc)) from exc
    except Exception as exc:  # in the first batch: nothing judged, nothing to keep
        raise EvaluationFailedError(f"judging failed before any pair was judged ({type(exc).__name__}: {exc})") from exc
    document["judge"] = judge.describe()
    document["seconds"] = round(time.perf_counter() - started, 3)
    try:
        tables = metrics.breakdowns(results, n_bootstrap=args.bootstrap, seed=args.seed)
        overall = json_records(tables.pop("overall"))[0]
        document["metrics"] = {"overall": overall, "by": {name: json_records(t) for name, t in tables.items()}}
        document["results"] = json_records(results)
        write_json_atomic(document, args.out, ensure_ascii=False, allow_nan=False)
    except Exception as exc:  # every pair is judged: keep them
        where = _write_partial(document, results, args, exc, len(results))
        raise EvaluationFailedError(
            f"the summary of all {len(results)} judged pairs failed ({type(exc).__name__}: {exc}); the pairs are in {where}"
        ) from exc
    return document


def _write_partial(
    document: dict[str, Any], results: pd.DataFrame, args: argparse.Namespace, cause: BaseException, n_pairs: int
) -> Path:
    where = partial_path(args.out)
    partial = {
        **document,
        "partial": True,
        "error": f"{type(cause).__name__}: {cause}",
        "n_pairs": n_pairs,
        "n_judged": len(results),
        "results": json_records(results),
    }
    write_json_atomic(partial, where, ensure_ascii=False, allow_nan=False)
    return where


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m persrm_lib.evaluate", description="Evaluate a judge on a canonical pair file (JSONL).")
    p.add_argument("--pairs", required=True, type=Path, help="pairs to evaluate (canonical JSONL)")
    p.add_argument("--judge", required=True, choices=JUDGES, help="which judge")
    p.add_argument("--model", help="registry name, hub id or model folder (loglik, generative, scalar-rm)")
    p.add_argument("--adapter", help="PEFT adapter folder for --judge generative (e.g. <run>/sft/adapter)")
    p.add_argument("--n-exemplars", type=whole_number(1), help="show the first K exemplars (default: each pair's own)")
    p.add_argument("--limit", type=whole_number(1), help="evaluate N pairs drawn with --seed (default: all)")
    p.add_argument(
        "--seed", type=seed_number, default=0, help="seed of --limit, the random judge, scalar-rm and the bootstrap"
    )
    p.add_argument("--train-pairs", type=Path, help="pairs to fit char-ngram, function-words, scalar-rm")
    p.add_argument(
        "--max-new-tokens", type=whole_number(1), default=256, help="generation budget of --judge generative"
    )
    p.add_argument("--batch-size", type=whole_number(1), default=8, help="prompts per forward pass")
    p.add_argument(
        "--scalar-rm-steps", type=whole_number(1), default=20, help="RewardTrainer steps of --judge scalar-rm"
    )
    p.add_argument(
        "--bootstrap", type=whole_number(1), default=metrics.N_BOOTSTRAP, help="bootstrap resamples for the intervals"
    )
    p.add_argument(
        "--orders",
        choices=ORDERS,
        default="both",
        help="both: judge each pair also with A and B swapped and average the two score pairs (default); "
        "original: as written (no order-consistent accuracy)",
    )
    p.add_argument(
        "--strip-think",
        action="store_true",
        help="--judge generative served by a reasoning model: strip one leading <think> block before parsing",
    )
    p.add_argument(
        "--count-too-long",
        action="store_true",
        help="--judge generative: count pairs whose prompt does not fit the context (too_long) instead of exit 2",
    )
    p.add_argument(
        "--stop-unparsable",
        action="store_true",
        help="--judge generative: end a completion at the first token after which it can no longer parse "
        "(the same verdicts in fewer tokens for a model that does not write the format)",
    )
    p.add_argument("--out", required=True, type=Path, help="result JSON (written atomically)")
    return p


@returns_status
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input, 1 for a failure after work began)."""
    args = parser().parse_args(argv)
    problem = files_problem({"--pairs": args.pairs, "--train-pairs": args.train_pairs}, "--out", args.out)
    if problem is not None:
        return fail(problem)
    try:
        document = run(args)
    except EvaluationInputError as exc:
        return fail(str(exc))
    except EvaluationFailedError as exc:
        return fail(str(exc), status=1)
    print(f"wrote {args.out}")
    print(summary_line(document["metrics"]["overall"], args.judge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
