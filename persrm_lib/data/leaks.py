"""Label shortcuts: does anything but style give a pair's label away? (docs/design.md, "Known hazards")."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.verdict import exemplars_of
from .embeddings import EmbeddingCache

_CONTENT_WORD_RE = re.compile(r"[a-z]{4,}")


def _accuracy(predictions: Iterable[str | None], labels: Iterable[str]) -> float:
    """Share of correct predictions; a ``None`` prediction (a tie) counts one half."""
    scores = [0.5 if p is None else float(p == y) for p, y in zip(predictions, labels, strict=True)]
    return float(np.mean(scores)) if scores else float("nan")


def _pick(score_a: float, score_b: float) -> str | None:
    """The side with the higher score; None on a tie."""
    return None if score_a == score_b else ("a" if score_a > score_b else "b")


def label_shortcut_report(pairs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Accuracy of label predictors that do not read style; each should sit near 0.5.

    - ``position_a``: always answer "a".
    - ``longer_wins_chars`` / ``longer_wins_words``: the longer response.
    - ``closer_length_to_exemplars``: the response whose character length is closest to the
      mean of the exemplars the pair is read with (:func:`persrm_lib.core.verdict.exemplars_of`).
    - ``strategy_majority``: the majority label of the pair's (positive, negative) strategy
      (an upper bound for any predictor that reads the strategy alone).
    - ``query_overlap``: the response sharing more content words (4+ letters) with the query: the
      coherence cue of ``query_mode="opening"`` (0.5 in neutral mode, where the query is fixed).

    Returns:
        ``n_pairs`` and one accuracy in [0, 1] per predictor (ties count one half; NaN for an empty set).
    """
    labels = [p["label"] for p in pairs]
    chars = [(len(p["response_a"]), len(p["response_b"])) for p in pairs]
    words = [(len(p["response_a"].split()), len(p["response_b"].split())) for p in pairs]
    exemplar_len = [float(np.mean([len(e) for e in exemplars_of(p)])) for p in pairs]
    strategy = Counter((p["positive_kind"], p["negative_kind"], p["label"]) for p in pairs)

    def majority(p: Mapping[str, Any]) -> str | None:
        key = (p["positive_kind"], p["negative_kind"])
        return _pick(strategy[(*key, "a")], strategy[(*key, "b")])

    def overlap(p: Mapping[str, Any], side: str) -> float:
        q = set(_CONTENT_WORD_RE.findall(p["query"].lower()))
        r = set(_CONTENT_WORD_RE.findall(p[f"response_{side}"].lower()))
        return len(q & r) / max(1, len(q | r))

    return {
        "n_pairs": float(len(pairs)),
        "position_a": _accuracy(["a"] * len(pairs), labels),
        "longer_wins_chars": _accuracy([_pick(a, b) for a, b in chars], labels),
        "longer_wins_words": _accuracy([_pick(a, b) for a, b in words], labels),
        "closer_length_to_exemplars": _accuracy(
            [_pick(-abs(a - e), -abs(b - e)) for (a, b), e in zip(chars, exemplar_len, strict=True)], labels
        ),
        "strategy_majority": _accuracy([majority(p) for p in pairs], labels),
        "query_overlap": _accuracy([_pick(overlap(p, "a"), overlap(p, "b")) for p in pairs], labels),
    }


def embedding_judge_accuracy(
    pairs: Sequence[Mapping[str, Any]], embeddings: EmbeddingCache, n_exemplars: int | None = None
) -> float:
    """Accuracy in [0, 1] of the topic judge (docs/design.md, "Simple judges"): the response with the
    higher MiniLM cosine to the mean of ``n_exemplars`` exemplars (None: the pair's own) wins; a
    tie counts one half. ValueError when a pair has fewer exemplars.
    """
    predictions = []
    for p in pairs:
        centroid = embeddings.embed(exemplars_of(p, n_exemplars)).mean(axis=0)
        va, vb = embeddings.embed([p["response_a"], p["response_b"]])
        predictions.append(_pick(float(va @ centroid), float(vb @ centroid)))
    return _accuracy(predictions, [p["label"] for p in pairs])
