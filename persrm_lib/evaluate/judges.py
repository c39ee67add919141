"""Judges: everything that, given a pair, scores response A and response B (PersRM-R1 §4, baselines).

The baselines that score each response against the exemplars on their own are here (``random``,
``char-ngram``, ``function-words``, ``embedding``); the language-model judges (``loglik``,
``generative``: the reward model itself, ``scalar-rm``) are in :mod:`.lm_judges`, the authorship
baselines (``lambdag``, ``evidence-lr``) in :mod:`.authorship`. :func:`make_judge` is the one
place that builds a judge by name. A judge returns a :class:`Verdict` (:mod:`persrm_lib.core.verdict`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.verdict import exemplars_of
from ..data.embeddings import EmbeddingCache
from ..data.stylometry import function_word_profile
from .authorship import EvidenceLRJudge, LambdaGJudge
from .judge_base import BaseJudge, Judge, NotFittedError, Pair, Verdict, cosine_rows, pair_texts, swap_pair  # noqa: F401 -- re-exported
from .lm_judges import GenerativeJudge, LoglikJudge, ScalarRMJudge


class RandomJudge(BaseJudge):
    """A uniform score per response, a function of ``seed`` and the response text only (position-invariant)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [
            float(np.random.default_rng([self.seed, zlib.crc32(str(r).encode("utf-8"))]).random()) for r in responses
        ]

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "seed": self.seed}


class CharNgramJudge(BaseJudge):
    """Character n-gram TF-IDF (scikit-learn) cosine to the exemplars' centroid; :meth:`fit` learns
    the vocabulary and idf weights from the training pairs' texts, never a label."""

    name = "char-ngram"
    learns_from = "texts"

    def __init__(
        self, ngram_range: tuple[int, int] = (3, 5), analyzer: str = "char", sublinear_tf: bool = True
    ) -> None:
        self.ngram_range = tuple(ngram_range)
        self.analyzer = analyzer
        self.sublinear_tf = sublinear_tf
        self.vectorizer: Any = None
        self.n_fit_texts = 0

    def fit(self, train_pairs: Sequence[Pair]) -> CharNgramJudge:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = pair_texts(train_pairs)
        if not texts:
            raise ValueError("char-ngram: no training text to fit on")
        self.vectorizer = TfidfVectorizer(
            analyzer=self.analyzer, ngram_range=self.ngram_range, sublinear_tf=self.sublinear_tf, lowercase=False
        ).fit(texts)
        self.n_fit_texts = len(texts)
        return self

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        if self.vectorizer is None:
            raise NotFittedError("judge 'char-ngram' must be fitted on training pairs first: call fit(train_pairs)")
        matrix = self.vectorizer.transform(list(exemplars) + list(responses)).toarray()
        centroid = matrix[: len(exemplars)].mean(axis=0)
        return cosine_rows(matrix[len(exemplars) :], centroid).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "ngram_range": list(self.ngram_range),
            "analyzer": self.analyzer,
            "fit_texts": self.n_fit_texts,
        }


class FunctionWordsJudge(BaseJudge):
    """Function-word profile (:func:`persrm_lib.data.stylometry.function_word_profile`).

    ``method="delta"``: minus Burrows' Delta, the mean absolute difference of z-scored frequencies
    between a response and the exemplars' mean profile (z-scores from the training texts).
    ``method="cosine"``: cosine of the raw profiles (no fit needed).
    """

    name = "function-words"
    learns_from = "texts"

    def __init__(self, method: Literal["delta", "cosine"] = "delta") -> None:
        if method not in ("delta", "cosine"):
            raise ValueError(f"function-words: method must be 'delta' or 'cosine', got {method!r}")
        self.method = method
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.profile = functools.cache(function_word_profile)  # each text's profile computed once

    def fit(self, train_pairs: Sequence[Pair]) -> FunctionWordsJudge:
        texts = pair_texts(train_pairs)
        if len(texts) < 2:
            raise ValueError("function-words: need at least two training texts to estimate z-scores")
        matrix = np.stack([self.profile(t) for t in texts])
        self.mean = matrix.mean(axis=0)
        self.std = matrix.std(axis=0)
        return self

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        centroid = np.stack([self.profile(t) for t in exemplars]).mean(axis=0)
        rows = np.stack([self.profile(t) for t in responses])
        if self.method == "cosine":
            return cosine_rows(rows, centroid).tolist()
        if self.mean is None or self.std is None:
            raise NotFittedError("judge 'function-words' (delta) must be fitted on training pairs first")
        used = self.std > 0  # a word that never varies in the training texts carries no signal
        z_rows = (rows[:, used] - self.mean[used]) / self.std[used]
        z_centroid = (centroid[used] - self.mean[used]) / self.std[used]
        return (-np.abs(z_rows - z_centroid).mean(axis=1)).tolist()

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "method": self.method}


class EmbeddingJudge(BaseJudge):
    """Sentence-embedding cosine (all-MiniLM-L6-v2, offline) to the exemplars' centroid; it follows
    topic, not style (docs/design.md, "Simple judges"). Vectors come from
    :class:`persrm_lib.data.embeddings.EmbeddingCache` (``cache_path``: e.g. the run's
    ``data/embeddings.npz``); ``encoder`` replaces MiniLM (tests).
    """

    name = "embedding"

    def __init__(
        self, cache_path: str | Path | None = None, encoder: Callable[[Sequence[str]], np.ndarray] | None = None
    ) -> None:
        self.cache = EmbeddingCache(cache_path, encoder)

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        self.cache.embed(pair_texts([{**p, "exemplars": exemplars_of(p, n_exemplars)} for p in pairs]))  # one pass
        return super().score_batch(pairs, n_exemplars)

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        centroid = self.cache.embed(list(exemplars)).astype(float).mean(axis=0)
        return cosine_rows(self.cache.embed(list(responses)).astype(float), centroid).tolist()


_FACTORIES: dict[str, Callable[..., Any]] = {
    "random": RandomJudge,
    "char-ngram": CharNgramJudge,
    "function-words": FunctionWordsJudge,
    "embedding": EmbeddingJudge,
    "loglik": LoglikJudge,
    "generative": GenerativeJudge,
    "scalar-rm": ScalarRMJudge,
    "lambdag": LambdaGJudge,
    "evidence-lr": EvidenceLRJudge,
}
JUDGES: tuple[str, ...] = tuple(_FACTORIES)

# Run-wide settings any judge may be given: setting -> {judge: the constructor argument it becomes}.
RUN_SETTINGS: dict[str, dict[str, str]] = {
    "model": {"loglik": "model", "generative": "model", "scalar-rm": "model"},
    "seed": {"random": "seed", "scalar-rm": "seed", "lambdag": "seed", "evidence-lr": "seed"},
    "loaded": {"loglik": "loaded", "generative": "loaded"},  # the base model, shared
    "batch_size": {"loglik": "batch_size", "generative": "batch_size"},  # prompts per forward pass
    "max_new_tokens": {"generative": "max_new_tokens"},
    "adapter": {"generative": "adapter"},
    "embedding_cache": {"embedding": "cache_path"},
    "scalar_rm_steps": {"scalar-rm": "max_steps"},
    "scalar_rm_batch_size": {"scalar-rm": "batch_size"},
    "scalar_rm_max_length": {"scalar-rm": "max_length"},
}
MODEL_JUDGES: tuple[str, ...] = tuple(RUN_SETTINGS["model"])  # need a language model (--model)
ADAPTER_JUDGES: tuple[str, ...] = tuple(RUN_SETTINGS["adapter"])  # take a PEFT adapter (--adapter)


def make_judge(name: str, /, **settings: Any) -> Judge:
    """Build a judge by name (one of :data:`JUDGES`): the one place that does.

    ``settings`` of :data:`RUN_SETTINGS` go to the judges that read them and are ignored by the
    others; any other keyword goes to the judge's constructor as it is (e.g. ``method="cosine"``).

    Raises:
        ValueError: an unknown judge name, naming the known ones.
        TypeError: a keyword that is neither a run-wide setting nor an argument of the judge.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
    arguments: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in RUN_SETTINGS:
            arguments[key] = value
        elif name in RUN_SETTINGS[key]:
            arguments[RUN_SETTINGS[key][name]] = value
    return _FACTORIES[name](**arguments)
