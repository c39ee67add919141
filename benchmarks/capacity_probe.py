"""Capacity probe: does a small student learn the DECISION, not just the format?

Two probes, each an SFT run through the project's own entry point
(:func:`persrm_lib.train.sft.train_sft`, both orders of every trace) and an evaluation of the
trained adapter on held-out pairs in both orders (:func:`persrm_lib.evaluate.judging.evaluate_pairs`):

- ``verdict``: completions that carry only the verdict, with the TRUE label (no reasoning to
  imitate: ``<criteria>the author's style</criteria><eval>Response X is closer…</eval>`` and
  scores 7/3). If the student cannot learn this, reasoning will not save it.
  With ``--evidence stylometric`` the prompt also carries the table of measurements (the H200
  probe's "verdict with evidence": can the student read the decision off the numbers?).
- ``trace``: the stylometric teacher's compact traces over a table of measurements in the prompt
  (``prompt.evidence = stylometric``: the values the trace cites are all in the prompt, so the
  student only has to copy and compare them); faithful traces only, as the pipeline trains. Reported
  beside accuracy: agreement of the student's verdict with the teacher's rule on the same test
  pairs, and how often its scores follow its own ``<eval>``.

Both report, per benchmark: format compliance, accuracy, order-consistent accuracy (right in both
orders) and the A-preference share. docs/design.md, "Measured on an H200", has the numbers a script
outside the project measured; this reproduces them inside the project. Reduced size here (minutes on
a 2-core CPU), full size on a GPU::

    python benchmarks/capacity_probe.py --run-dir runs/smoke --probe verdict --train-pairs 32 --out probe.json
    python benchmarks/capacity_probe.py --run-dir runs/smoke --probe verdict --evidence stylometric \
        --train-pairs 32 --out probe-evidence.json    # the same, with the measurements in the prompt
    python benchmarks/capacity_probe.py --run-dir runs/device-data --profile device --probe trace \\
        --train-pairs 0 --epochs 1 --out probe-trace.json          # 0: every training pair

It prints one line per benchmark and writes the whole record (settings, seconds, metrics) as JSON.
Every argument and input is checked before the model loads (:func:`parse_args`, then the pair files):
a bad one exits with status 2 and one line naming it and its range.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persrm_lib.core import runfiles, verdict
from persrm_lib.core.cli import Parser, finite_number, output_problem, seed_number, whole_number
from persrm_lib.core.config import PROFILES, get_profile, set_threads
from persrm_lib.core.output_format import render_output
from persrm_lib.core.setting_ranges import RANGES
from persrm_lib.data.evidence import attach_evidence
from persrm_lib.data.pairs import PairFormatError, read_pairs
from persrm_lib.models.backend import BACKENDS, BackendUnavailableError, select_backend
from persrm_lib.teachers.stylometric import StylometricTeacher

PROBES = ("verdict", "trace")


def sample(pairs: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """The first ``n`` pairs of a seeded permutation (all of them for ``n`` = 0)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [dict(pairs[i]) for i in (order if n <= 0 else order[:n])]


def verdict_trace(pair: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict-only trace with the true label: no reasoning, the decision only."""
    side = pair["label"].upper()
    scores = (7.0, 3.0) if pair["label"] == "a" else (3.0, 7.0)
    completion = render_output("the author's style", f"Response {side} is closer to the exemplars' style.", scores)
    return {**pair, "teacher": "label", "completion": completion, "scores": list(scores), "faithful": True}


def teacher_traces(teacher: StylometricTeacher, pairs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The teacher's compact traces; only the faithful ones (the pipeline's filter)."""
    out = []
    for pair in pairs:
        completion = teacher.judge(pair)
        judged = verdict.read_verdict(completion)
        if judged.outcome(pair["label"]) == verdict.CORRECT:
            out.append(
                {**pair, "teacher": teacher.name, "completion": completion, "scores": judged.scores, "faithful": True}
            )
    return out


def order_metrics(results: Any) -> dict[str, Any]:
    """The evaluation's own rates of a table judged in both orders
    (:func:`persrm_lib.evaluate.metrics.metric_row`: accuracy of the averaged verdict, order-consistent
    accuracy, A-preference, format, reasoning agreement), plus the accuracy of the original order
    alone and the share of parsed per-order verdicts that tie."""
    from persrm_lib.evaluate import metrics

    row = metrics.metric_row(results, n_bootstrap=200)
    rows = results.to_dict("records")
    parsed = metrics.parsed_sides(results)
    row["accuracy_original_order"] = (
        sum(verdict.is_correct(r["original_preferred"], r["label"]) for r in rows) / len(rows) if rows else float("nan")
    )
    row["tie_share"] = sum(side not in ("a", "b") for side in parsed) / len(parsed) if parsed else float("nan")
    return row


def _json_safe(value: Any) -> Any:
    """NaN (an undefined share, e.g. the A-preference when no verdict parsed) becomes null in JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def parse_args(argv: Sequence[str] | None = None) -> tuple[Parser, argparse.Namespace]:
    """The parser and the command line, every argument checked before anything is read or loaded;
    a bad one exits with status 2 and one line naming it and its allowed range."""
    most_exemplars = int(RANGES["data.n_exemplars"].high)  # the prompt numbers up to eight
    learning_rate = RANGES["sft.learning_rate"]
    parser = Parser(prog="benchmarks/capacity_probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run folder with pairs from 01_synthesize")
    parser.add_argument("--probe", choices=PROBES, required=True)
    parser.add_argument(
        "--profile", default="smoke", choices=sorted(PROFILES), help="model, LoRA, SFT and evaluation settings"
    )
    parser.add_argument(
        "--train-pairs", type=whole_number(0), default=32, help="training pairs (0: all), each in both orders"
    )
    parser.add_argument("--test-pairs", type=whole_number(0), default=24, help="held-out pairs per benchmark (0: all)")
    parser.add_argument(
        "--n-exemplars",
        type=whole_number(0, most_exemplars),
        default=0,
        help="exemplars per training prompt (0: the pairs' own)",
    )
    parser.add_argument(
        "--test-exemplars",
        type=whole_number(0, most_exemplars),
        default=0,
        help="exemplars per test prompt (0: the pairs' own)",
    )
    parser.add_argument(
        "--evidence",
        choices=("none", "stylometric"),
        default=None,
        help="the measurements table in the prompt (default: none for verdict; trace needs stylometric)",
    )
    parser.add_argument("--epochs", type=finite_number(0, low_open=True), default=1.0)
    parser.add_argument("--lora-r", type=whole_number(1), default=16)
    parser.add_argument("--learning-rate", type=finite_number(learning_rate.low, learning_rate.high), default=2e-4)
    parser.add_argument(
        "--max-new-tokens", type=whole_number(0), default=0, help="judging budget (0: 96 verdict, 256 trace)"
    )
    parser.add_argument("--batch-size", type=whole_number(1), default=8, help="prompts per forward pass when judging")
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None, help="training backend (default: the machine's choice)"
    )
    parser.add_argument("--seed", type=seed_number, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.evidence = args.evidence or ("stylometric" if args.probe == "trace" else "none")
    if args.probe == "trace" and args.evidence != "stylometric":
        parser.error("--probe trace cites the measurements table: it needs --evidence stylometric")
    if args.backend is not None:
        try:
            select_backend(args.backend)
        except (BackendUnavailableError, ValueError) as exc:
            parser.error(f"argument --backend: {exc}")
    train_path = runfiles.pairs_path(args.run_dir, "train")
    if not train_path.is_file():
        parser.error(
            f"argument --run-dir: no {train_path}: make the pairs first "
            "(python -m persrm_lib.run --profile PROFILE --only 01)"
        )
    test_paths = sorted(train_path.parent.glob("test_*.jsonl"))
    if not test_paths:
        parser.error(f"argument --run-dir: no held-out pairs (test_*.jsonl) in {train_path.parent}")
    problem = output_problem(args.out, "--out", [train_path, *test_paths])
    if problem is not None:
        parser.error(f"argument {problem}")
    return parser, args


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = parse_args(argv)
    evidence = args.evidence
    try:
        profile = get_profile(
            args.profile,
            {
                "sft.epochs": args.epochs,
                "sft.max_steps": -1,
                "sft.learning_rate": args.learning_rate,
                "sft.both_orders": True,
                "lora.r": args.lora_r,
                "lora.alpha": 2 * args.lora_r,
            }
            | (
                {"prompt.evidence": "stylometric", "teacher.trace_style": "compact"}
                if evidence == "stylometric"
                else {}
            ),
        )
    except (KeyError, ValueError) as exc:
        parser.error(f"argument --profile: {exc.args[0]}")

    try:
        train = sample(read_pairs(runfiles.pairs_path(args.run_dir, "train")), args.train_pairs, args.seed)
        tests = {
            path.stem[len("test_") :]: sample(read_pairs(path), args.test_pairs, args.seed)
            for path in sorted(runfiles.pairs_path(args.run_dir, "train").parent.glob("test_*.jsonl"))
        }
    except PairFormatError as exc:
        parser.error(f"argument --run-dir: {exc}")
    if args.n_exemplars:
        train = [{**p, "n_exemplars": args.n_exemplars} for p in train if len(p["exemplars"]) >= args.n_exemplars]
        tests = {
            k: [{**p, "n_exemplars": args.n_exemplars} for p in v if len(p["exemplars"]) >= args.n_exemplars]
            for k, v in tests.items()
        }
    if args.test_exemplars:
        tests = {
            k: [{**p, "n_exemplars": args.test_exemplars} for p in v if len(p["exemplars"]) >= args.test_exemplars]
            for k, v in tests.items()
        }
    if not train:
        parser.error(
            f"argument --n-exemplars: no training pair has {args.n_exemplars} exemplars: use --n-exemplars 0 (the "
            "pairs' own)"
        )
    empty = sorted(name for name, pairs in tests.items() if not pairs)
    if empty:
        flag = "--test-exemplars" if args.test_exemplars else "--n-exemplars"
        parser.error(
            f"argument {flag}: no held-out pair of {', '.join(empty)} has {args.test_exemplars or args.n_exemplars} "
            f"exemplars: use {flag} 0 (the pairs' own)"
        )

    from persrm_lib.evaluate.judges import make_judge
    from persrm_lib.evaluate.judging import evaluate_pairs
    from persrm_lib.train.sft import train_sft

    set_threads(profile.num_threads)
    teacher = None
    if evidence == "stylometric":  # the measurements come from the teacher's features, fitted on train
        measurer = StylometricTeacher(compact=True, n_criteria=profile.teacher.n_criteria)
        measurer.prepare(train)
        train = attach_evidence(train, measurer.evidence)
        tests = {k: attach_evidence(v, measurer.evidence) for k, v in tests.items()}
    if args.probe == "verdict":
        traces = [verdict_trace(p) for p in train]
    else:
        teacher = measurer
        traces = teacher_traces(teacher, train)
    record: dict[str, Any] = {
        "probe": args.probe,
        "evidence": evidence,
        "profile": profile.name,
        "threads": profile.num_threads,
        "model": profile.model.name,
        "lora_r": args.lora_r,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "train_pairs": len(train),
        "sft_examples": 2 * len(traces),
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory() as run:
        started = time.perf_counter()
        result = train_sft(profile, run, traces, backend=args.backend)
        record["sft_seconds"] = round(time.perf_counter() - started, 1)
        record["sft_steps"] = result.steps
        record["sft_final_loss"] = result.final_loss
        budget = args.max_new_tokens or (96 if args.probe == "verdict" else 256)
        judge = make_judge(
            "generative",
            model=profile.model.name,
            adapter=result.adapter_dir,
            max_new_tokens=budget,
            batch_size=args.batch_size,
        )
        record["benchmarks"] = {}
        for name, pairs in tests.items():
            started = time.perf_counter()
            results = evaluate_pairs(judge, pairs, orders="both", benchmark=name, batch_size=args.batch_size)
            metrics = order_metrics(results) | {"seconds": round(time.perf_counter() - started, 1)}
            if teacher is not None:
                rule = [verdict.read_verdict(teacher.judge(p)).preferred for p in pairs]
                model = results["original_preferred"].tolist()  # the original order, as the rule was applied
                metrics["agreement_with_rule"] = sum(r == m for r, m in zip(rule, model, strict=True)) / len(pairs)
                metrics["rule_accuracy"] = sum(
                    verdict.is_correct(r, p["label"]) for r, p in zip(rule, pairs, strict=True)
                ) / len(pairs)
            metrics["examples"] = [  # two completions to read: what the student writes
                {"id": r["id"], "label": r["label"], "completion": r["completion"]}
                for r in results.to_dict("records")[:2]
            ]
            record["benchmarks"][name] = metrics
            print(
                f"{args.probe} {name}: n={metrics['n']} format={metrics['format']:.2f} accuracy={metrics['accuracy']:.3f} "
                f"order-consistent={metrics['order_consistent_accuracy']:.3f} A-preference={metrics['a_preference']:.2f}"
                + (f" agreement-with-rule={metrics['agreement_with_rule']:.3f}" if teacher is not None else ""),
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
