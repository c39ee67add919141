"""What every judge shares (PersRM-R1 §4): :class:`BaseJudge` (alias :data:`Judge`), the interface.
A judge returns THE verdict type, :class:`persrm_lib.core.verdict.Verdict` (re-exported here),
which the reward and the filter share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from ..core.verdict import Verdict, exemplars_of
from ..data.pairs import swap_pair  # noqa: F401 -- THE swap of a pair's order, re-exported for the judges

Pair = Mapping[str, Any]
LearnsFrom = Literal["nothing", "texts", "labels"]
# a model and tokenizer, or a function that loads them on first use (shared between judges)
Loaded = tuple[Any, Any] | Callable[[], tuple[Any, Any]]


class NotFittedError(RuntimeError):
    """A judge that must be fitted on training pairs was asked to score first."""


def pair_texts(pairs: Sequence[Pair]) -> list[str]:
    """Every distinct text of the pairs (exemplars and both responses), sorted; no label is read."""
    return sorted({str(t) for p in pairs for t in [*p["exemplars"], p["response_a"], p["response_b"]]})


def cosine_rows(matrix: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``matrix`` (n x d) with ``centroid`` (d); 0 where either vector is zero.

    >>> cosine_rows(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([2.0, 0.0])).tolist()
    [1.0, 0.0]
    """
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(centroid)
    dots = matrix @ centroid
    return np.divide(dots, norms, out=np.zeros_like(dots, dtype=float), where=norms > 0)


class BaseJudge:
    """What the evaluation needs of a judge. ``score`` calls ``score_batch``, which calls
    :meth:`score_responses` (one score per response from the exemplars alone) in a position-invariant judge."""

    name = "base"
    position_invariant = True  # each response scored on its own: swapping A and B swaps the scores
    learns_from: ClassVar[LearnsFrom] = "nothing"  # what fit() reads: nothing, the texts (no label), labelled pairs

    def fit(self, train_pairs: Sequence[Pair]) -> BaseJudge:
        return self  # no parameters

    def score(self, pair: Pair, n_exemplars: int | None = None) -> Verdict:
        return self.score_batch([pair], n_exemplars)[0]

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        verdicts = []
        for pair in pairs:
            s_a, s_b = self.score_responses(exemplars_of(pair, n_exemplars), [pair["response_a"], pair["response_b"]])
            verdicts.append(Verdict(float(s_a), float(s_b)))
        return verdicts

    def score_responses(self, exemplars: Sequence[str], responses: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Plain settings recorded next to the results."""
        return {"judge": self.name}


Judge = BaseJudge  # the interface every judge implements
