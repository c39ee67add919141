"""Notebook 05's evaluation suite over a run folder (PersRM-R1 §4): every baseline judge and every
reward-model stage on every test set, at each exemplar count, through the judging loop of
:mod:`persrm_lib.evaluate.judging`; and its headline metrics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import runfiles
from ..core.config import EvaluationSettings
from ..data.pairs import read_pairs
from ..models.registry import load_model
from . import metrics
from .authorship import TooFewReferencesError
from .judges import JUDGES, MODEL_JUDGES, Judge, make_judge
from .judging import evaluate_pairs, select_pairs
from .metrics import STAGE_LABELS
from .records import RESULT_FIELDS, STAGES, check_stage, completion_records, plain, write_eval_completions

GENERATIVE = "generative"  # the reward model: evaluated through `stages`, one judge per stage
BASELINES: tuple[str, ...] = tuple(j for j in JUDGES if j != GENERATIVE)


@dataclass
class SuiteResult:
    """Per-pair rows of every judge, what was skipped and why, and what was written."""

    results: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    completion_files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # judge -> wall time
    stripped: dict[str, int] = field(default_factory=dict)  # stage judge -> outputs whose <think> block was stripped


def load_test_sets(run: Path, benchmarks: Sequence[str]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The test pairs of each benchmark that has them (``data/pairs/test_<benchmark>.jsonl``), and notes on the rest.

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


def generative_limit(settings: EvaluationSettings, benchmark: str) -> int:
    """How many test pairs of ``benchmark`` a generative stage (base, SFT, RFT) is judged on; 0 means all:
    ``settings.persona_generative_pairs`` for ``personas`` where it is set, else ``settings.generative_pairs``."""
    if benchmark == "personas" and settings.persona_generative_pairs:
        return settings.persona_generative_pairs
    return settings.generative_pairs


def judged_pairs(pairs: Sequence[Mapping[str, Any]], k: int, limit: int, seed: int) -> list[Mapping[str, Any]]:
    """The test pairs a judge is scored on at ``k`` exemplars, as :func:`run_suite` draws them.

    The pairs with at least ``k`` exemplars, then :func:`persrm_lib.evaluate.judging.select_pairs`' seeded draw
    of ``limit`` of them (all when ``limit`` is 0), so a script that judges "the pairs notebook 05 judged"
    (``limit`` from :func:`generative_limit`, ``seed`` the profile's) gets the same pairs in the same order.
    """
    return select_pairs(_usable(pairs, k), limit or None, seed)


def run_suite(
    run: str | Path,
    profile: Any,
    judges: Sequence[str] = BASELINES,
    stages: Sequence[str] = STAGES,
    batch_size: int = 8,
    progress: bool = True,
    orders: str = "both",
) -> SuiteResult:
    """Evaluate baselines and the reward model's stages on every test set of a run folder.

    Args:
        run: the run folder (reads ``data/pairs/train.jsonl``, ``data/pairs/test_<benchmark>.jsonl``,
            ``sft/adapter``, ``rft/adapter``; writes ``eval/completions/<stage>.jsonl``).
        profile: the :class:`persrm_lib.core.config.Profile`: benchmarks, exemplar counts, model
            (``max_completion_length``: the generation budget), seed, and ``evaluation``
            (:class:`persrm_lib.core.config.EvaluationSettings`: pairs per judge, scalar-rm training,
            ``strip_think``, ``count_too_long``, ``stop_unparsable``).
        judges: baseline judges (names of :data:`persrm_lib.evaluate.judges.JUDGES`, not ``generative``).
        stages: of :data:`persrm_lib.evaluate.records.STAGES`; a stage whose adapter is absent is
            skipped with a note.
        orders: one of :data:`persrm_lib.evaluate.judging.ORDERS`.

    Returns a :class:`SuiteResult`, ``results`` one row per (judge, benchmark, exemplar count,
    pair) with a ``stage`` column (``baseline``, ``base``, ``sft``, ``rft``).

    Raises:
        FileNotFoundError: the run has no test pairs. ValueError: an unknown stage.
    """
    run = Path(run)
    seed = profile.seed
    counts = sorted(set(profile.data.eval_exemplar_counts))
    settings = profile.evaluation
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
    base_model = functools.cache(lambda: load_model(profile.model.name))  # loglik and the base stage share it

    def evaluate_all(
        judge: Judge, label: str, stage: str, ks: Sequence[int], limits: Mapping[str, int]
    ) -> pd.DataFrame:
        parts = []
        for bench, pairs in test_sets.items():
            for k in ks:
                subset = judged_pairs(pairs, k, limits[bench], seed)
                if subset:
                    parts.append(
                        evaluate_pairs(
                            judge, subset, k, orders, benchmark=bench, batch_size=batch_size, progress=progress
                        )
                    )
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(RESULT_FIELDS))
        return frame.assign(judge=label, stage=stage)

    for name in judges:
        if name == GENERATIVE:
            notes.append("judge generative: evaluated through `stages`, not `judges`")
            continue
        started = time.perf_counter()
        judge = make_judge(
            name,
            model=profile.model.name,
            seed=seed,
            loaded=base_model,
            batch_size=batch_size,
            embedding_cache=runfiles.data_dir(run) / "embeddings.npz",
            scalar_rm_steps=settings.scalar_rm_steps,
            scalar_rm_batch_size=settings.scalar_rm_batch_size,
            scalar_rm_max_length=settings.scalar_rm_max_length,
        )
        if judge.learns_from != "nothing" and not train_pairs:
            notes.append(f"judge {name}: {train_path} is missing, so it cannot be fitted; skipped")
            continue
        if train_pairs:
            judge.fit(train_pairs)
        cap = settings.model_pairs if name in MODEL_JUDGES else 0
        try:
            frames.append(evaluate_all(judge, name, "baseline", counts, dict.fromkeys(test_sets, cap)))
        except TooFewReferencesError as exc:  # a training set too small for LambdaG: say so, go on
            notes.append(f"judge {name}: {exc}; skipped")
            continue
        seconds[name] = time.perf_counter() - started

    completion_files: list[Path] = []
    stripped: dict[str, int] = {}
    for stage in stages:
        check_stage(stage)
        adapter = None if stage == "base" else runfiles.adapter_dir(run, stage)
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            notes.append(
                f"stage {stage}: no adapter at {adapter}, skipped (run {'03_sft' if stage == 'sft' else '04_rft_grpo'})"
            )
            continue
        started = time.perf_counter()
        judge = make_judge(
            GENERATIVE,
            model=profile.model.name,
            adapter=adapter,
            max_new_tokens=profile.model.max_completion_length,
            batch_size=batch_size,
            name=STAGE_LABELS[stage],
            loaded=base_model if adapter is None else None,
            mode=profile.prompt.mode if adapter is None else None,  # an adapter judges in its own mode
            strip_think=settings.strip_think,
            count_too_long=settings.count_too_long,
            stop_unparsable=settings.stop_unparsable,
        )
        frame = evaluate_all(
            judge,
            STAGE_LABELS[stage],
            stage,
            gen_counts,
            {bench: generative_limit(settings, bench) for bench in test_sets},
        )
        frames.append(frame)
        if settings.strip_think:
            stripped[STAGE_LABELS[stage]] = judge.n_stripped
            notes.append(f"stage {stage}: a leading <think> block stripped from {judge.n_stripped} output(s)")
        if settings.count_too_long and frame["too_long"].any():
            notes.append(
                f"stage {stage}: {int(frame['too_long'].sum())} pair(s) too long for the context, "
                "counted in too_long and left out of the rates"
            )
        records = completion_records(frame, stage, profile.model.name)
        completion_files.append(write_eval_completions(run, stage, records))
        seconds[STAGE_LABELS[stage]] = time.perf_counter() - started
        del judge
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*RESULT_FIELDS, "stage"])
    return SuiteResult(results, notes, completion_files, seconds, stripped)


# headline name -> metric_row column, reported per reward-model stage
STAGE_RATES = {
    "format": "format", "consistency": "consistency", "order_consistent": "order_consistent_accuracy",
    "a_preference": "a_preference", "reasoning": "reasoning_agreement",
}  # fmt: skip


def headline_metrics(
    results: pd.DataFrame, main_k: int, goals: pd.DataFrame, n_bootstrap: int = metrics.N_BOOTSTRAP, seed: int = 0
) -> dict[str, Any]:
    """Notebook 05's headline metrics (``metrics/05_evaluate.json``), at ``main_k`` exemplars.

    ``results``: :attr:`SuiteResult.results`; ``goals``: :func:`persrm_lib.evaluate.metrics.reference_goals`
    rows (may be empty). Returns ``pairs_scored``, ``judges``, ``main_exemplars``; per judge (``-``
    written ``_``) ``accuracy_<judge>`` (4 decimals) and ``n_<judge>``; per reward-model stage also
    the :data:`STAGE_RATES` (None where undefined) and ``too_long`` count; with goals,
    ``goals_met``, ``goals`` and ``goal_met/<key>`` per goal (:func:`persrm_lib.evaluate.metrics.goal_key`).
    """
    headline = metrics.summarize(results[results["n_exemplars"] == main_k], "judge", n_bootstrap, seed)
    headline = headline.set_index("judge")
    summary = {"pairs_scored": int(len(results)), "judges": len(headline), "main_exemplars": int(main_k)}
    for judge_name, row in headline.iterrows():
        key = judge_name.replace("-", "_")
        summary[f"accuracy_{key}"] = round(float(row["accuracy"]), 4)
        summary[f"n_{key}"] = int(row["n"])
        if judge_name.startswith("rm-"):
            for name, column in STAGE_RATES.items():
                summary[f"{name}_{key}"] = plain(round(float(row[column]), 4))
            summary[f"too_long_{key}"] = int(row["too_long"])
    if len(goals):
        summary["goals_met"] = int(goals["met"].sum())
        summary["goals"] = int(len(goals))
        summary.update(
            {f"goal_met/{metrics.goal_key(g)}": bool(m) for g, m in zip(goals["goal"], goals["met"], strict=True)}
        )
    return summary
