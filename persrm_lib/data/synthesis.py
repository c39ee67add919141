"""Every pair set of a run, and its files (what notebook 01 calls; paper §3.1).

>>> pairs_table({"train": [{"positive_kind": "p", "negative_kind": "n", "label": "a", "author": "x",
...                         "genre": "g", "provenance": {"benchmark": "sotu"}}]}).iloc[0].tolist()
['train', 'sotu', 'p', 'n', 'a', 'x', 'g']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .benchmarks import BENCHMARKS, benchmark_seed
from .embeddings import EmbeddingCache
from .personas import build_persona_pairs, persona_splits
from .pool import NEUTRAL_QUERY, response_budget
from .sampler import Mimic, SamplingReport, build_pairs


def _shares(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` (largest remainders; names sorted)."""
    names = sorted(k for k, w in weights.items() if w > 0)
    if not names:
        return {}
    mass = sum(weights[k] for k in names)
    exact = {k: total * weights[k] / mass for k in names}
    out = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(names, key=lambda k: (-(exact[k] - out[k]), k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def synthesize_pairs(
    tables: Mapping[str, pd.DataFrame],
    data: Any,
    seed: int,
    embeddings: EmbeddingCache,
    synonyms: Any,
    query_mode: str = "opening",
    mimic: Mimic | None = None,
    validation_pairs: int | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """All pair sets of a run: ``train`` and ``validation`` from the training and validation
    authors of every benchmark that is not test-only (shared in proportion to their authors),
    and ``test_<benchmark>`` from each benchmark's test authors; each set by
    :func:`persrm_lib.data.sampler.build_pairs` (or
    :func:`persrm_lib.data.personas.build_persona_pairs`) with its own derived seed.

    Args:
        tables: benchmark name -> Document table with ``split`` set (:func:`persrm_lib.data.benchmarks.load_benchmark`).
        data, seed: the profile's ``cfg.data`` and ``cfg.seed``.
        embeddings, synonyms, query_mode, mimic: see :func:`build_pairs`.
        validation_pairs: pairs in the validation set (default ``data.eval_pairs``).

    Returns:
        ``(pair sets, reports)``, both keyed by set name (``train``, ``validation``, ``test_sotu``...).
        Test pairs carry ``max(data.eval_exemplar_counts)`` exemplars (fewer are read by truncation).
    """
    response_words = response_budget(data.passage_words, data.query_words)
    test_exemplars = max(data.eval_exemplar_counts)
    sets: dict[str, list[dict[str, Any]]] = {}
    reports: dict[str, dict[str, Any]] = {}
    plan: list[tuple[str, str, str, int, int]] = []  # (set, benchmark, split, n_pairs, n_exemplars)
    persona_split = (
        persona_splits(data.persona_held_out_operator, data.persona_max_operators, data.persona_test_share, seed)
        if any(BENCHMARKS[name].personas for name in tables)
        else {}
    )
    for split, total in (("train", data.train_pairs), ("validation", validation_pairs or data.eval_pairs)):
        weights = {
            # a persona benchmark weighs as many "authors" as it has personas in the split
            name: len(persona_split[split].targets)
            if BENCHMARKS[name].personas
            else int(table.loc[table["split"] == split, "author"].nunique())
            for name, table in tables.items()
            if not BENCHMARKS[name].test_only and data.trains_on(name)
        }
        for name, n in _shares(total, weights).items():
            if n:
                plan.append((split, name, split, n, data.n_exemplars))
    for name in sorted(tables):
        plan.append((f"test_{name}", name, "test", data.eval_pairs, test_exemplars))
    for set_name, name, split, n, n_exemplars in plan:
        bench, table = BENCHMARKS[name], tables[name]
        report = SamplingReport()
        set_seed = benchmark_seed(seed, f"{set_name}/{name}")
        id_prefix = set_name if set_name.startswith("test_") else f"{set_name}-{name}"
        if bench.personas:
            pairs = build_persona_pairs(
                table[table["split"] == split],
                persona_split[split],
                n,
                n_exemplars,
                set_seed,
                query=NEUTRAL_QUERY,
                synonyms=synonyms,
                id_prefix=id_prefix,
                split_name=split,
            )
            report.built.update((p["positive_kind"], p["negative_kind"]) for p in pairs)
        else:
            pairs = build_pairs(
                table,
                n,
                n_exemplars,
                data.query_words,
                response_words,
                embeddings,
                set_seed,
                split=split,
                benchmark=name,
                exemplar_genres=bench.exemplar_genres,
                candidate_genres=bench.candidate_genres,
                query_mode=query_mode,
                synonyms=synonyms,
                mimic=mimic,
                report=report,
                id_prefix=id_prefix,
            )
        sets.setdefault(set_name, []).extend(pairs)
        reports[f"{set_name}/{name}"] = report.as_dict()
    return sets, reports


def pairs_table(sets: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per pair with its set, benchmark, strategy, label and author (for tables and plots)."""
    rows = [
        {
            "set": name,
            "benchmark": p.get("provenance", {}).get("benchmark", ""),
            "positive_kind": p["positive_kind"],
            "negative_kind": p["negative_kind"],
            "label": p["label"],
            "author": p["author"],
            "genre": p["genre"],
        }
        for name, pairs in sets.items()
        for p in pairs
    ]
    return pd.DataFrame(rows)


_SAVED_FILES = re.compile(r"(?:data-\d{5}-of-\d{5}\.arrow|dataset_info\.json|state\.json)")


def save_pairs_dataset(pairs: Sequence[Mapping[str, Any]], out_dir: str | Path) -> Path:
    """Save pairs as a ``datasets.Dataset`` (``save_to_disk``), replacing ``out_dir`` atomically;
    ValueError (nothing touched) when ``out_dir`` holds something a save did not write."""
    import shutil
    import tempfile

    import datasets
    from datasets import Dataset

    out = Path(out_dir)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{out} is not a folder")
    if out.exists():  # replaced only when a save made it: every entry is a file that save_to_disk writes
        entries = sorted(out.iterdir())
        other = [p.name for p in entries if p.is_dir() or p.is_symlink() or not _SAVED_FILES.fullmatch(p.name)]
        if other or not {"state.json", "dataset_info.json"} <= {p.name for p in entries}:
            shown = ", ".join(other[:5]) or "no state.json and dataset_info.json"
            raise ValueError(
                f"{out} is not a saved dataset ({shown}): move it away, it is replaced only when a save made it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))  # a folder made here, never a fixed name
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # one bar per small save only clutters notebooks
    try:
        Dataset.from_list([dict(p) for p in pairs]).save_to_disk(str(work / "dataset"))
        if out.exists():
            shutil.rmtree(out)
        (work / "dataset").rename(out)
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
        shutil.rmtree(work, ignore_errors=True)
    return out


def headline_metrics(
    documents: pd.DataFrame,
    pair_sets: Mapping[str, Sequence[Mapping[str, Any]]],
    shortcut_checks: pd.DataFrame,
    response_words: int,
    n_traces: int,
    n_faithful: int,
) -> dict[str, Any]:
    """The headline metrics of notebook 01 (for :func:`persrm_lib.run.notebook.write_metrics`).

    Args:
        shortcut_checks: one row per set (index: set name), an ``n_pairs`` column and one column per
            label predictor (:func:`persrm_lib.data.leaks.label_shortcut_report`); NaN where absent.
        n_traces, n_faithful: traces the teacher wrote and how many agree with the label.

    Returns:
        ``n_documents``, ``n_authors``, ``response_words``, ``n_traces``, ``teacher_agreement``,
        ``n_pairs/<set>`` and ``shortcut/<set>/<predictor>`` (floats in [0, 1]) per non-NaN cell.

    Raises:
        ValueError: ``n_traces`` is 0 (no agreement to report).
    """
    if n_traces < 1:
        raise ValueError("no teacher traces: notebook 01 records the teacher's agreement over at least one trace")
    metrics: dict[str, Any] = {
        "n_documents": int(len(documents)),
        "n_authors": int(documents["author"].nunique()),
        "response_words": response_words,
        "n_traces": n_traces,
        "teacher_agreement": n_faithful / n_traces,
    }
    for name, pairs in pair_sets.items():
        metrics[f"n_pairs/{name}"] = len(pairs)
    for (name, predictor), value in shortcut_checks.drop(columns="n_pairs").stack().dropna().items():
        metrics[f"shortcut/{name}/{predictor}"] = float(value)  # NaN: the kind is absent
    return metrics
