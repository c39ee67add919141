"""GRPO on the training pairs the SFT model gets wrong, against GRPO on all of them.

Why: the cpu reference run's GRPO stage left its SFT adapter's held-out verdicts unchanged (RFT = SFT).
At 10 of its 12 steps every sampled completion was right, the group's rewards had no spread, so the
advantage and the gradient were zero (``results/cpu/logs/rft.csv``: reward 1.0, ``grad_norm`` about
1e-10): GRPO learns only from groups whose rewards differ (DAPO, arXiv 2503.14476, §3.2, drops such
groups and samples more). A policy that is right on almost every training pair gives few such groups.
This script asks whether choosing the prompts gives GRPO something to learn at this scale:

- ``all``: GRPO on the persona training pairs, as notebook 04 trains (the trainer's seeded order);
- ``hard``: GRPO on those of the first ``--candidates`` persona training pairs that the SFT adapter
  does not judge right greedily (the wrong side, a tie, or no parsable verdict), the same steps and settings.

Both start from the same SFT adapter (``results/cpu/adapters/sft``) with the profile's GRPO settings
(``--set`` overrides any of them but the steps, e.g. ``--set grpo.temperature 1.5``), and the SFT
adapter and each RFT adapter are judged greedily on the held-out persona pairs that notebook 05 judges
(the same seeded draw of ``test_personas``, as many as ``evaluation.persona_generative_pairs``, read
with ``data.n_exemplars`` exemplars). The JSON written to ``--out`` holds the selection (pairs judged,
the ids and negative kinds of those not judged right), each variant's steps (reward, its spread,
gradient norm, share of zero-spread joint groups), its held-out rates with a paired bootstrap interval
against SFT and the ids of the held-out pairs whose verdict changed, and the wall time. The
measurement in the README (``results/grpo_hard_pairs.json``)::

    python -m persrm_lib.run --profile cpu --only 01 --run-dir runs/cpu      # the cpu profile's pairs
    python benchmarks/grpo_hard_pairs.py --run-dir runs/cpu --steps 12 --candidates 128 \
        --out results/grpo_hard_pairs.json

Every argument and input is checked before anything is judged or trained: a bad one exits with
status 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from persrm_lib.core import runfiles
from persrm_lib.core.cli import Parser, output_problem, parse_names, whole_number
from persrm_lib.core.config import PROFILES, Profile, get_profile, set_threads
from persrm_lib.core.paths import REPO_ROOT, RESULTS_DIR
from persrm_lib.data.pairs import PairFormatError, read_pairs
from persrm_lib.data.personas import is_persona_pair

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity_probe import _json_safe  # noqa: E402  (a sibling benchmark script)

VARIANTS = ("all", "hard")
STEP_COLUMNS = ("step", "reward", "reward_std", "grad_norm", "correct", "joint_frac_reward_zero_std")
HELD_OUT_COLUMNS = ("n", "accuracy", "order_consistent_accuracy", "format")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, every argument and input checked before anything is judged or trained."""
    parser = Parser(prog="benchmarks/grpo_hard_pairs.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run folder with the profile's pairs (01)")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--sft-adapter", type=Path, default=RESULTS_DIR / "cpu" / "adapters" / "sft")
    parser.add_argument("--steps", type=whole_number(1), default=12, help="GRPO steps of each variant")
    parser.add_argument(
        "--candidates", type=whole_number(1), default=128, help="persona training pairs judged to find the hard ones"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a profile setting, e.g. grpo.temperature 1.5",
    )
    parser.add_argument("--batch-size", type=whole_number(1), default=16, help="prompts per batch of greedy judging")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.variants = parse_names(args.variants)
    if not args.variants or set(args.variants) - set(VARIANTS) or len(set(args.variants)) < len(args.variants):
        parser.error(f"argument --variants: got {args.variants}; choose from {', '.join(VARIANTS)}, each at most once")
    fixed = sorted({key for key, _ in args.set} & {"grpo.max_steps", "grpo.eval_every"})
    if fixed:
        parser.error(f"argument --set: {fixed[0]} is this script's own (--steps; no evaluation during GRPO)")
    overrides = {key: value for key, value in args.set} | {"grpo.max_steps": args.steps, "grpo.eval_every": 0}
    try:
        args.grpo_profile = get_profile(args.profile, overrides)
    except (KeyError, ValueError, TypeError) as exc:
        parser.error(f"argument --set: {exc.args[0]}")
    if not (args.sft_adapter / "adapter_config.json").is_file():
        parser.error(f"argument --sft-adapter: {args.sft_adapter} is not an adapter folder (no adapter_config.json)")
    paths = {split: runfiles.pairs_path(args.run_dir, split) for split in ("train", "test_personas")}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        parser.error(f"argument --run-dir: no {missing[0]}: make the pairs (python -m persrm_lib.run --profile "
                     f"{args.profile} --only 01 --run-dir {args.run_dir})")  # fmt: skip
    problem = output_problem(args.out, "--out", list(paths.values()))
    if problem is not None:
        parser.error(f"argument {problem}")
    try:
        pairs = {split: [p for p in read_pairs(path) if is_persona_pair(p)] for split, path in paths.items()}
    except PairFormatError as exc:
        parser.error(f"argument --run-dir: {exc}")
    for split, found in pairs.items():
        if not found:
            parser.error(f"argument --run-dir: {paths[split]} holds no persona pair (data.benchmarks needs personas)")
    from persrm_lib.evaluate.suite import generative_limit, judged_pairs

    # the held-out pairs notebook 05 judges (its filter and seeded draw), so the SFT row repeats the run's
    profile = args.grpo_profile
    limit = generative_limit(profile.evaluation, "personas")
    args.train = pairs["train"]
    args.test = judged_pairs(pairs["test_personas"], profile.data.n_exemplars, limit, profile.seed)
    return args


def judge_adapter(profile: Profile, adapter: Path, pairs: Sequence[dict], name: str, batch_size: int) -> pd.DataFrame:
    """Greedy verdicts of ``adapter`` on ``pairs`` with the profile's ``data.n_exemplars`` exemplars (both orders;
    a pointwise adapter's are one), judge column ``name``."""
    from persrm_lib.evaluate.judges import make_judge
    from persrm_lib.evaluate.judging import evaluate_pairs

    judge = make_judge(
        "generative", model=profile.model.name, adapter=adapter, max_new_tokens=profile.model.max_completion_length
    )
    k = profile.data.n_exemplars  # the exemplars it was trained with (held-out pairs carry more; 05 reads k too)
    results = evaluate_pairs(judge, pairs, n_exemplars=k, orders="both", benchmark="personas", batch_size=batch_size)
    return results.assign(judge=name)


def held_out_rates(results: pd.DataFrame, name: str) -> dict[str, Any]:
    """``name``'s overall rates and its accuracy per negative kind."""
    from persrm_lib.evaluate import metrics

    mine = results[results["judge"] == name]
    row = metrics.metric_row(mine, n_bootstrap=1000)
    by_kind = metrics.summarize(mine, by="negative_kind", n_bootstrap=200)
    return {
        **{key: row[key] for key in HELD_OUT_COLUMNS},
        "accuracy_by_negative_kind": {
            r["negative_kind"]: {"n": int(r["n"]), "accuracy": round(r["accuracy"], 4)} for _, r in by_kind.iterrows()
        },
    }


def write_record(path: Path, record: dict[str, Any]) -> None:
    """The JSON of ``--out``, written whole (NaN as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    from persrm_lib.evaluate import metrics
    from persrm_lib.train.grpo import train_grpo
    from persrm_lib.train.logs import read_log

    profile = args.grpo_profile
    set_threads(profile.num_threads)
    adapter = args.sft_adapter.resolve()
    shown = adapter.relative_to(REPO_ROOT) if adapter.is_relative_to(REPO_ROOT) else adapter  # no machine path
    record: dict[str, Any] = {
        "sft_adapter": shown.as_posix(),
        "profile": args.profile,
        "overrides": dict(args.set),
        "steps": args.steps,
        "grpo": {k: getattr(profile.grpo, k) for k in ("learning_rate", "temperature", "num_generations", "beta")},
        "variants": {},
    }
    began = time.perf_counter()
    results = [judge_adapter(profile, adapter, args.test, "sft", args.batch_size)]
    record["sft"] = held_out_rates(results[0], "sft")
    print("sft held-out:", json.dumps(record["sft"]), flush=True)
    if "hard" in args.variants:
        candidates = args.train[: args.candidates]
        judged = judge_adapter(profile, adapter, candidates, "sft", args.batch_size)
        kept = metrics.scored(judged)  # a pair too long for the context is not a hard one
        wrong = set(kept.loc[~metrics.correct(kept), "id"])
        hard = [p for p in candidates if p["id"] in wrong]
        record["selection"] = {
            "judged": len(candidates),
            "accuracy": metrics.accuracy(judged),
            "not_right": {p["id"]: p["negative_kind"] for p in hard},
        }
        print("selection:", json.dumps(record["selection"]), flush=True)
    for variant in args.variants:
        pairs = args.train if variant == "all" else hard
        if not pairs:
            record["variants"][variant] = {"skipped": "the SFT adapter judges every candidate pair right"}
            continue
        with tempfile.TemporaryDirectory() as run:
            shutil.copytree(adapter, runfiles.adapter_dir(run, "sft"))
            started = time.perf_counter()
            result = train_grpo(profile, run, pairs)
            seconds = time.perf_counter() - started
            log = read_log(result.log_path)
            steps = log[list(STEP_COLUMNS)].round(6).to_dict("records")
            name = f"rft-{variant}"
            results.append(judge_adapter(profile, result.adapter_dir, args.test, name, args.batch_size))
        table = pd.concat(results, ignore_index=True)
        against = metrics.paired_comparison(table, name, ["sft"], by=None, n_bootstrap=1000, measure="accuracy")
        difference = against.iloc[0] if len(against) else None
        verdicts = {j: rows.set_index("id")["preferred"].fillna("none") for j, rows in table.groupby("judge")}
        record["variants"][variant] = {
            "training_pairs": len(pairs),
            "seconds": round(seconds, 1),
            "steps": steps,
            "held_out": held_out_rates(table, name),
            "accuracy_minus_sft": None
            if difference is None
            else {k: round(float(difference[k]), 4) for k in ("difference", "diff_low", "diff_high")},
            # "none": no parsable verdict
            "verdicts_changed": sorted(verdicts[name].index[verdicts[name] != verdicts["sft"]]),
        }
        print(variant, json.dumps({k: v for k, v in record["variants"][variant].items() if k != "steps"}), flush=True)
        write_record(args.out, record)  # after every variant
    record["wall_seconds"] = round(time.perf_counter() - began, 1)
    record["threads"] = profile.num_threads
    write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
