"""The named benchmarks (:data:`BENCHMARKS`) and their author-disjoint splits (PersRM-R1, arXiv
2508.14076, §4).

>>> benchmark_seed(0, "sotu") == benchmark_seed(0, "sotu") != benchmark_seed(1, "sotu")
True
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .corpora import load_aaac, load_literature, load_sotu
from .folders import load_c50, load_cmcc

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def split_authors(authors: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Assign each author to ``train``, ``validation`` or ``test``: author-disjoint, fixed by seed.

    The authors are sorted, then permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(n * test_fraction)`` (at least one when the fraction is positive) go to test, the next
    ``round(n * val_fraction)`` (likewise) to validation, the rest to train.

    Raises:
        ValueError: fractions outside [0, 1) or leaving no training author.
    """
    names = sorted(set(authors))
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {fraction}")
    n = len(names)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise ValueError(
            f"{n} author(s) cannot be split into test ({n_test}), validation ({n_val}) and at least one training author"
        )
    order = np.random.default_rng(seed).permutation(n)
    splits = ["test"] * n_test + ["validation"] * n_val + ["train"] * (n - n_test - n_val)
    return dict(sorted(zip([names[i] for i in order], splits, strict=True)))


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: which corpus, and which genres give exemplars and candidates.

    ``exemplar_genres``/``candidate_genres`` of ``None`` mean any genre. ``test_only``: every
    author is a test author (an unseen genre, never trained on).
    """

    name: str
    description: str
    exemplar_genres: tuple[str, ...] | None = None
    candidate_genres: tuple[str, ...] | None = None
    test_only: bool = False
    root_env: str | None = None  # the environment variable naming the corpus folder (external corpora)
    personas: bool = False  # controlled-style personas (persrm_lib.data.personas): split by work, pairs by persona


BENCHMARKS: dict[str, Benchmark] = {
    "sotu": Benchmark(
        "sotu", "CCAT-like: one genre (State of the Union addresses), held-out presidents; era is a shortcut"
    ),
    "aaac": Benchmark(
        "aaac",
        "CMCC-like cross-genre: exemplars from a student's essays, candidates from term papers",
        exemplar_genres=("essay",),
        candidate_genres=("term-paper",),
    ),
    "literature": Benchmark(
        "literature", "unseen genre: Federalist papers and novels, every author held out", test_only=True
    ),
    "personas": Benchmark(
        "personas",
        "controlled-style personas: style operators applied to passages of every offline corpus; criteria known exactly",
        personas=True,
    ),
    # the paper's benchmarks, read from folders you provide (not shipped: see the README)
    "ccat50": Benchmark(
        "ccat50", "CCAT50 (Reuters C50): news, one genre, held-out authors", root_env="PERSRM_CCAT50_DIR"
    ),
    "cmcc": Benchmark("cmcc", "CMCC: six genres per author, held-out authors", root_env="PERSRM_CMCC_DIR"),
}


def benchmark_seed(seed: int, name: str) -> int:
    """A per-benchmark seed: the profile seed mixed with a stable hash of the name."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**32)


def load_benchmark(
    name: str, passage_words: int, val_fraction: float, test_fraction: float, seed: int, **loader_kwargs: object
) -> pd.DataFrame:
    """Load a named benchmark's corpus as a Document table, its ``split`` filled author-disjointly (see
    :data:`BENCHMARKS`) and ``attrs["benchmark"]`` naming it.

    Args:
        name: ``sotu``, ``aaac``, ``literature``, ``personas`` (split by work:
            :func:`persrm_lib.data.personas.persona_base_passages`), or ``ccat50`` / ``cmcc``
            (folders named by ``$PERSRM_CCAT50_DIR`` / ``$PERSRM_CMCC_DIR`` or ``root=``).
        passage_words, val_fraction, test_fraction, seed: from the profile (``cfg.data``, ``cfg.seed``).
        loader_kwargs: passed to the loader (e.g. ``presidents=[...]`` for sotu, ``root=`` for aaac).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    loaders = {
        "sotu": load_sotu,
        "aaac": load_aaac,
        "literature": load_literature,
        "ccat50": load_c50,
        "cmcc": load_cmcc,
    }
    bench = BENCHMARKS[name]
    if bench.personas:
        from .personas import persona_base_passages

        table = persona_base_passages(
            passage_words, seed=benchmark_seed(seed, name), fractions=(val_fraction, test_fraction), **loader_kwargs
        )  # type: ignore[arg-type]
    else:
        if bench.root_env:
            root = loader_kwargs.pop("root", None) or os.environ.get(bench.root_env)
            if not root:
                raise FileNotFoundError(
                    f"benchmark {name!r} reads a corpus you provide: set {bench.root_env} to its folder "
                    f"(or pass root=...); see the README, 'The paper's corpora'"
                )
            loader_kwargs["root"] = root
        table = loaders[name](passage_words=passage_words, **loader_kwargs)
        if bench.test_only:
            table["split"] = "test"
        else:
            assignment = split_authors(table["author"], val_fraction, test_fraction, benchmark_seed(seed, name))
            table["split"] = table["author"].map(assignment)
    table.attrs["benchmark"] = name
    return table
