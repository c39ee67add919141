"""Joint-order GRPO against TRL's per-prompt GRPO, on the same budget, from a collapsed SFT model.

The committed cpu reference run's SFT adapter (``results/cpu/adapters/sft``) prefers response A on
every pair: the always-A collapse (docs/design.md, "The always-A collapse is absorbing"). This script
starts GRPO from it twice, with everything equal but the grouping of the advantage (``grpo.joint_orders``):

- ``per-prompt``: TRL's groups (the ``num_generations`` samples of one prompt). An always-A policy
  earns +1 on every sample of an A-labelled prompt and 0 on every sample of a B-labelled one, so
  every group has zero spread and zero advantage (``frac_reward_zero_std`` = 1).
- ``joint``: both orders of a pair in one group (:mod:`persrm_lib.train.order_robust`, EIS-GRPO).

It prints, per variant and step, the mean reward, the shares of zero-spread groups (per prompt and
joint), the A-preference of the sampled verdicts, and at the end the greedy verdicts of the trained
adapter on validation pairs in both orders (accuracy, order-consistent accuracy, A-preference).

    python benchmarks/order_robust_grpo.py --run-dir runs/cpu --steps 6 --out results/order_robust_grpo.json

``--run-dir`` must hold the cpu profile's pairs (``python -m persrm_lib.run --profile cpu --only 01``).
Every argument and input is checked before the first variant trains (:func:`parse_args`): a bad one
exits with status 2 and one line naming it and its range.
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

from persrm_lib.core import runfiles
from persrm_lib.core.cli import Parser, output_problem, whole_number
from persrm_lib.core.config import PROFILES, Profile, get_profile, set_threads
from persrm_lib.core.paths import REPO_ROOT, RESULTS_DIR
from persrm_lib.data.pairs import PairFormatError, read_pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity_probe import _json_safe, order_metrics  # noqa: E402  (a sibling benchmark script)

VARIANTS = {"per-prompt": False, "joint": True}
STEP_COLUMNS = ("step", "reward", "frac_reward_zero_std", "joint_frac_reward_zero_std", "a_preference", "correct")


def variant_profile(profile: str, variant: str, steps: int) -> Profile:
    """The profile a variant trains with: ``steps`` GRPO steps, its grouping, no evaluation in between."""
    return get_profile(profile, {"grpo.max_steps": steps, "grpo.joint_orders": VARIANTS[variant], "grpo.eval_every": 0})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, every argument and input checked before anything trains; a bad one exits
    with status 2 and one line naming it and its allowed range (:class:`persrm_lib.core.cli.Parser`)."""
    parser = Parser(prog="benchmarks/order_robust_grpo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run folder with the cpu profile's pairs")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--sft-adapter", type=Path, default=RESULTS_DIR / "cpu" / "adapters" / "sft")
    parser.add_argument("--steps", type=whole_number(1), default=6)
    parser.add_argument(
        "--eval-pairs", type=whole_number(1), default=12, help="validation pairs judged in both orders at the end"
    )
    parser.add_argument("--variants", default="per-prompt,joint", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants or len(set(args.variants)) < len(args.variants):
        given = ", ".join(unknown) or ("none given" if not args.variants else "a variant named twice")
        parser.error(f"argument --variants: {given}; choose from {', '.join(VARIANTS)}, each at most once")
    paths = {split: runfiles.pairs_path(args.run_dir, split) for split in ("train", "validation")}
    for path in paths.values():
        if not path.is_file():
            parser.error(
                f"argument --run-dir: no {path}: make the cpu profile's pairs (python -m persrm_lib.run "
                "--profile cpu --only 01)"
            )
    if not (args.sft_adapter / "adapter_config.json").is_file():
        parser.error(f"argument --sft-adapter: {args.sft_adapter} is not an adapter folder (no adapter_config.json)")
    problem = output_problem(args.out, "--out", list(paths.values()))
    if problem is not None:
        parser.error(f"argument {problem}")
    try:
        args.profiles = {v: variant_profile(args.profile, v, args.steps) for v in args.variants}
    except (KeyError, ValueError) as exc:
        parser.error(f"argument --profile: {exc.args[0]}")
    try:
        args.train = read_pairs(paths["train"])
        args.validation = read_pairs(paths["validation"])[: args.eval_pairs]
    except PairFormatError as exc:
        parser.error(f"argument --run-dir: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    from persrm_lib.evaluate.judges import make_judge
    from persrm_lib.evaluate.judging import evaluate_pairs
    from persrm_lib.train.grpo import train_grpo
    from persrm_lib.train.logs import read_log

    adapter = args.sft_adapter.resolve()
    shown = adapter.relative_to(REPO_ROOT) if adapter.is_relative_to(REPO_ROOT) else adapter  # no machine path
    record: dict[str, Any] = {"sft_adapter": shown.as_posix(), "steps": args.steps, "variants": {}}
    train, validation = args.train, args.validation
    for variant in args.variants:
        profile = args.profiles[variant]
        set_threads(profile.num_threads)
        with tempfile.TemporaryDirectory() as run:
            shutil.copytree(args.sft_adapter, runfiles.adapter_dir(run, "sft"))
            started = time.perf_counter()
            result = train_grpo(profile, run, train)
            seconds = time.perf_counter() - started
            log = read_log(result.log_path)
            steps = log[list(STEP_COLUMNS)].round(4).to_dict("records")
            for row in steps:
                print(f"{variant} " + " ".join(f"{k}={row[k]}" for k in STEP_COLUMNS), flush=True)
            judge = make_judge(
                "generative",
                model=profile.model.name,
                adapter=result.adapter_dir,
                max_new_tokens=profile.model.max_completion_length,
                batch_size=8,
            )
            metrics = order_metrics(evaluate_pairs(judge, validation, orders="both", benchmark="validation"))
            print(f"{variant} validation: " + " ".join(f"{k}={v}" for k, v in metrics.items()), flush=True)
            record["variants"][variant] = {"seconds": round(seconds, 1), "steps": steps, "validation": metrics}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
