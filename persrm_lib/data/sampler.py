"""Contrastive pairs (query, exemplars, chosen, rejected) from a Document table (paper §3.1).

PersRM-R1 builds its training data from a small corpus per user. Each strategy below is one
function named with the paper's term:

Positives (the chosen response: the author's own text)
    :func:`intra_author_retrieval`   the author's passage nearest (MiniLM cosine) to the exemplars
    :func:`lexical_perturbation`     an author's passage (drawn at random) with 3-4 words swapped
                                     for close WordNet synonyms
Negatives (the rejected response: not the author's text)
    :func:`cross_author_retrieval`   the other author's passage nearest to the chosen one (topic-matched)
    :func:`random_sampling`          a random passage of another author
    :func:`same_era_sampling`        a passage of another author from the closest year (sotu: era
                                     alone picks the author 97-100% of the time, docs/design.md, "Era shortcut")
    :func:`confounding_adversarial`  text made to look like the author: written by a teacher LLM
                                     (``adversarial-mimicry``) when a ``mimic`` callable is given;
                                     otherwise the topic-near passage of another author whose
                                     character n-grams are closest to the exemplars
                                     (``adversarial-retrieved``)

Leaks this module closes, each measured by :func:`persrm_lib.data.leaks.label_shortcut_report` and tested:

- Query. ``query_mode="opening"`` (the paper's setup, default): the query is the first
  ``query_words`` words of the chosen passage and the chosen response is the text AFTER them, so
  the query never appears inside the chosen response. The rejected response is cut the same way
  from its own passage (words ``query_words`` onwards), so both start at the same offset,
  usually mid-sentence, and neither opens an address with "Fellow-Citizens". The trade-off: only
  the chosen response continues the query, so a judge can win on coherence with the query
  (the ``query_overlap`` shortcut: 0.66-0.79 on sotu, 0.94 on aaac in the smoke run).
  ``query_mode="neutral"`` uses one fixed instruction (:data:`persrm_lib.data.pool.NEUTRAL_QUERY`) that fits both
  responses equally: no coherence cue, but no topic either. Generated (mimicry) negatives continue the query like the
  chosen one does, which is the paper's setup.
- Length. Both responses are cut to exactly ``response_words`` words
  (:func:`persrm_lib.data.pool.response_budget`: ``passage_words - query_words``).
- Position. Within each (positive_kind, negative_kind) strategy, exactly half the pairs put the
  chosen response in A, by a seeded shuffle; a strategy with an odd count has one spare pair,
  and the spares alternate between A and B, so the whole set is balanced too.
- Overlap. Exemplars come from the author's other works (another address, essay or chapter); an
  author with a single work gives exemplars from the same work that are not next to the chosen
  passage. Never the chosen passage, never overlapping text.

The passages, their cut responses and the exemplars come from :mod:`persrm_lib.data.pool`; every
set of a run is built by :func:`persrm_lib.data.synthesis.synthesize_pairs`.

>>> import numpy as np
>>> import pandas as pd
>>> from persrm_lib.data.embeddings import EmbeddingCache
>>> vocabulary = "river stone market harvest letter window engine council garden winter".split()
>>> docs = pd.DataFrame([
...     {"doc_id": f"a{a}w{w}#{p}", "author": f"author{a}", "genre": "toy", "source": "toy", "split": "",
...      "work": f"a{a}w{w}", "year": None, "position": p,
...      "text": " ".join(vocabulary[(a * 7 + w * 3 + p + i) % 10] for i in range(40))}
...     for a in range(4) for w in range(3) for p in range(3)])
>>> flat = EmbeddingCache(None, encoder=lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2)
>>> pairs = build_pairs(docs, n_pairs=8, n_exemplars=2, query_words=6, response_words=30, embeddings=flat,
...                     seed=0, strategies=[("intra-author-retrieval", "random")])
>>> len(pairs), sorted({p["label"] for p in pairs}), sum(p["label"] == "a" for p in pairs)
(8, ['a', 'b'], 4)
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .embeddings import EmbeddingCache
from .pool import NEUTRAL_QUERY, QUERY_MODES, PassagePool, draw_exemplars, sample_pool
from .stylometry import char_ngram_similarity

__all__ = [
    "NEGATIVE_KINDS",
    "POSITIVE_KINDS",
    "Mimic",
    "SamplingReport",
    "build_pairs",
    "confounding_adversarial",
    "cross_author_retrieval",
    "default_strategies",
    "intra_author_retrieval",
    "lexical_perturbation",
    "random_sampling",
    "same_era_sampling",
]

logger = logging.getLogger(__name__)

POSITIVE_KINDS: tuple[str, ...] = ("intra-author-retrieval", "lexical-perturbation")
NEGATIVE_KINDS: tuple[str, ...] = ("cross-author-retrieval", "random", "same-era", "adversarial")
ADVERSARIAL_RETRIEVED = "adversarial-retrieved"
ADVERSARIAL_MIMICRY = "adversarial-mimicry"
SWAPS = (3, 4)  # lexical perturbation: the paper swaps 3-4 words
ADVERSARIAL_POOL = 10  # topic-nearest other-author passages among which the style-closest is taken


class Mimic(Protocol):
    """A teacher LLM that writes a confounding adversarial response: ``n_words`` words that
    continue ``query`` in the style of ``exemplars`` (the paper's mimicry negatives)."""

    def __call__(self, exemplars: Sequence[str], query: str, n_words: int) -> str: ...


def _cut(text: str, n_words: int) -> str:
    return " ".join(text.split()[:n_words])


# --------------------------------------------------------------------------------------------
# Positive strategies
# --------------------------------------------------------------------------------------------


def intra_author_retrieval(pool: PassagePool, author: str, exemplars: Sequence[int], used: set[int]) -> int | None:
    """Positive, *intra-author retrieval*: the author's candidate passage nearest (MiniLM cosine)
    to the mean of the exemplars, from works the exemplars do not come from, not used before.
    (An author whose exemplars cover every work gives a passage of those works that is neither
    an exemplar nor next to one.)

    Returns:
        The chosen row, or ``None`` when the author has no such passage left.
    """
    exemplar_works = {pool.work(i) for i in exemplars}
    fresh = [i for i in pool.candidates.get(author, []) if i not in used and i not in exemplars]
    rows = [i for i in fresh if pool.work(i) not in exemplar_works]
    if not rows:
        taken = {(pool.work(i), int(pool.docs.at[i, "position"])) for i in exemplars}
        rows = [
            i
            for i in fresh
            if all((pool.work(i), int(pool.docs.at[i, "position"]) + d) not in taken for d in (-1, 0, 1))
        ]
    if not rows:
        return None
    centroid = pool.vectors[list(exemplars)].mean(axis=0)
    scores = pool.vectors[rows] @ centroid
    return rows[int(np.argmax(scores))]


def lexical_perturbation(
    response: str, synonyms: Any, rng: random.Random, swaps: tuple[int, int] = SWAPS
) -> tuple[str, list[tuple[str, str]]] | None:
    """Positive, *lexical perturbation*: the author's response with 3-4 words (drawn by ``rng``)
    swapped for close WordNet synonyms (:class:`persrm_lib.data.synonyms.WordNetSynonyms`); names,
    capitalised words and numbers are never swapped.

    Returns:
        The perturbed response and its swaps, or ``None`` when fewer than ``swaps[0]`` words
        can be swapped.
    """
    n = rng.randint(swaps[0], swaps[1])
    text, made = synonyms.perturb(response, rng, n)
    if len(made) < swaps[0]:
        return None
    return text, made


# --------------------------------------------------------------------------------------------
# Negative strategies
# --------------------------------------------------------------------------------------------


def cross_author_retrieval(pool: PassagePool, chosen: int, used: set[int]) -> int | None:
    """Negative, *cross-author retrieval*: the passage of another author nearest (MiniLM cosine)
    to the chosen passage (a topic-matched negative), preferring passages not used as negatives."""
    others = pool.others(chosen)
    if not len(others):
        return None
    scores = pool.vectors[others] @ pool.vectors[chosen]
    order = others[np.argsort(-scores, kind="stable")]
    fresh = [int(i) for i in order if int(i) not in used]
    return fresh[0] if fresh else int(order[0])


def random_sampling(pool: PassagePool, chosen: int, rng: random.Random) -> int | None:
    """Negative, *random sampling*: a uniformly drawn passage of another author."""
    others = pool.others(chosen)
    return int(others[rng.randrange(len(others))]) if len(others) else None


def same_era_sampling(pool: PassagePool, chosen: int, rng: random.Random) -> int | None:
    """Negative, *same era*: a passage of another author from the year closest to the chosen
    passage's year (drawn among the passages at that smallest gap). ``None`` without years.

    On sotu the year alone identifies the author of a random passage almost always (docs/design.md, "Era shortcut");
    same-era negatives remove that shortcut, so benchmarks report them separately.
    """
    if not pool.has_years:
        return None
    others = pool.others(chosen)
    if not len(others):
        return None
    year = int(pool.docs.at[chosen, "year"])
    gaps = np.abs(pool.docs["year"].to_numpy(dtype=float)[others] - year)
    nearest = sorted(int(i) for i in others[gaps == gaps.min()])
    return nearest[rng.randrange(len(nearest))]


def confounding_adversarial(
    pool: PassagePool,
    chosen: int,
    exemplars: Sequence[int],
    used: set[int],
    mimic: Mimic | None = None,
    query: str | None = None,
) -> tuple[int | None, str | None, str]:
    """Negative, *confounding adversarial*: text made to resemble the author.

    With ``mimic`` (a teacher LLM), it writes ``response_words`` words continuing ``query`` in the
    exemplars' style: ``adversarial-mimicry``. Without one (or when it writes too little), the
    :data:`ADVERSARIAL_POOL` other-author passages nearest in topic to the chosen passage are
    ranked by character 3-5-gram similarity to the exemplars (the strongest simple style judge,
    docs/design.md, "Simple judges") and the closest is taken: ``adversarial-retrieved``.

    Returns:
        ``(row, text, negative_kind)``: a pool row (retrieved) or generated text (mimicry).
    """
    if mimic is not None:
        written = " ".join(
            str(mimic([pool.text(i) for i in exemplars], query or NEUTRAL_QUERY, pool.response_words)).split()
        )
        if len(written.split()) >= pool.response_words:
            return None, _cut(written, pool.response_words), ADVERSARIAL_MIMICRY
        logger.warning(
            "mimic wrote %d words, %d needed: falling back to a retrieved adversary",
            len(written.split()),
            pool.response_words,
        )
    others = pool.others(chosen)
    if not len(others):
        return None, None, ADVERSARIAL_RETRIEVED
    scores = pool.vectors[others] @ pool.vectors[chosen]
    order = [int(i) for i in others[np.argsort(-scores, kind="stable")]]
    near = [i for i in order if i not in used][:ADVERSARIAL_POOL] or order[:ADVERSARIAL_POOL]
    style = char_ngram_similarity([pool.text(i) for i in exemplars], [pool.responses[i][1] for i in near])
    return near[int(np.argmax(style))], None, ADVERSARIAL_RETRIEVED


# --------------------------------------------------------------------------------------------
# Building pairs
# --------------------------------------------------------------------------------------------


def default_strategies(has_years: bool) -> list[tuple[str, str]]:
    """Every positive kind with every negative kind (``same-era`` only where years are known)."""
    negatives = [k for k in NEGATIVE_KINDS if has_years or k != "same-era"]
    return [(p, n) for p in POSITIVE_KINDS for n in negatives]


@dataclass
class SamplingReport:
    """What :func:`build_pairs` did: pairs per strategy, and skips counted by reason."""

    built: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skipped_authors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "built": {f"{p}/{n}": c for (p, n), c in sorted(self.built.items())},
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_authors": sorted(self.skipped_authors),
        }


def build_pairs(
    docs: pd.DataFrame,
    n_pairs: int,
    n_exemplars: int,
    query_words: int,
    response_words: int,
    embeddings: EmbeddingCache,
    seed: int,
    *,
    split: str | None = None,
    benchmark: str = "custom",
    exemplar_genres: tuple[str, ...] | None = None,
    candidate_genres: tuple[str, ...] | None = None,
    strategies: Sequence[tuple[str, str]] | None = None,
    query_mode: str = "opening",
    synonyms: Any = None,
    mimic: Mimic | None = None,
    report: SamplingReport | None = None,
    id_prefix: str | None = None,
    max_passages_per_author: int | None | str = "auto",
) -> list[dict[str, Any]]:
    """Build ``n_pairs`` contrastive pairs (docs/design.md, "Pair") from one split's authors.

    Strategies are taken in turn (an equal share each), authors in a seeded rotation. Negatives
    come from the other authors of the same split. An author without enough passages for
    ``n_exemplars`` exemplars besides a chosen passage is skipped, counted in ``report`` and
    logged; a pair that cannot be built for one author is tried with the next.

    Args:
        docs: the Document table (``split`` selects its rows when given).
        n_pairs: pairs to build.
        n_exemplars: exemplars per pair (test sets use the largest count evaluated, so smaller
            counts are read by truncation: :func:`persrm_lib.core.verdict.exemplars_of`).
        query_words: words in the query opening (``query_mode="opening"``).
        response_words: words in each response (see :func:`response_budget`).
        embeddings: MiniLM vectors (cached per run).
        seed: the seed; same inputs and seed give the same pairs.
        split: ``train``, ``validation`` or ``test`` (None: all rows).
        benchmark: the benchmark name recorded in ``provenance`` and the ids.
        exemplar_genres, candidate_genres: genre restrictions (aaac: essays vs term papers).
        strategies: ``(positive_kind, negative_kind)`` pairs (default :func:`default_strategies`).
        query_mode: ``opening`` (paper) or ``neutral`` (see the module docstring).
        synonyms: a :class:`persrm_lib.data.synonyms.WordNetSynonyms` (needed for lexical perturbation).
        mimic: a teacher LLM for ``adversarial-mimicry`` negatives (None: retrieved adversaries).
        report: filled with counts of pairs and skips.
        id_prefix: pair ids are ``<id_prefix>-<index>`` (default ``<benchmark>-<split>``).
        max_passages_per_author: passages kept per (author, genre) before embedding, by
            :func:`sample_pool`; ``"auto"``: ``2 * ceil(n_pairs / authors) + 2 * n_exemplars + 2``
            (enough for the pairs, and embedding cost grows with the pairs, not the corpus);
            ``None``: all.

    Returns:
        Pairs as dicts; each also carries ``provenance`` (document ids, query mode, swaps, year gap).

    Raises:
        ValueError: an unknown strategy or query mode, no rows, fewer than two eligible authors.
    """
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {query_mode!r}")
    if n_exemplars < 1:
        raise ValueError(f"n_exemplars must be at least 1, got {n_exemplars}")
    report = report if report is not None else SamplingReport()
    rows = docs if split is None else docs[docs["split"] == split]
    where = f"benchmark {benchmark!r}" + (f" split {split!r}" if split else "")
    if rows.empty:
        raise ValueError(f"{where}: no documents")
    if max_passages_per_author == "auto":
        max_passages_per_author = 2 * math.ceil(n_pairs / rows["author"].nunique()) + 2 * n_exemplars + 2
    rows = sample_pool(rows, max_passages_per_author, seed)  # type: ignore[arg-type]
    vectors = embeddings.embed(rows["text"].tolist())
    pool = PassagePool(rows, vectors, exemplar_genres, candidate_genres, query_mode, query_words, response_words)
    strategies = list(strategies) if strategies is not None else default_strategies(pool.has_years)
    for positive, negative in strategies:
        if positive not in POSITIVE_KINDS or negative not in NEGATIVE_KINDS:
            raise ValueError(
                f"unknown strategy ({positive!r}, {negative!r}); positives {POSITIVE_KINDS}, negatives {NEGATIVE_KINDS}"
            )
        if negative == "same-era" and not pool.has_years:
            raise ValueError(f"{where}: the same-era negative needs a year for every document")
        if positive == "lexical-perturbation" and synonyms is None:
            raise ValueError("lexical-perturbation needs `synonyms` (persrm_lib.data.synonyms.WordNetSynonyms())")

    eligible = []
    for author in pool.authors:
        probe = draw_exemplars(pool, author, n_exemplars, random.Random(0), avoid=pool.candidates[author][0])
        if probe is None and len(pool.candidates[author]) > 1:
            probe = draw_exemplars(pool, author, n_exemplars, random.Random(0), avoid=pool.candidates[author][-1])
        if probe is None:
            report.skipped[f"authors with too few documents for {n_exemplars} exemplar(s)"] += 1
            report.skipped_authors.append(author)
            logger.warning(
                "%s: author %r has too few documents for %d exemplar(s): skipped", where, author, n_exemplars
            )
        else:
            eligible.append(author)
    if len(eligible) < 2:
        raise ValueError(
            f"{where}: {len(eligible)} author(s) have enough documents for {n_exemplars} exemplar(s) and a chosen "
            f"passage; pairs need at least two (skipped: {sorted(report.skipped_authors)})"
        )

    rng = random.Random(seed)
    used_chosen: set[int] = set()
    used_rejected: set[int] = set()
    drafts: list[dict[str, Any]] = []
    rotation: list[str] = []
    for index in range(n_pairs):
        positive, negative = strategies[index % len(strategies)]
        draft = None
        for _attempt in range(len(eligible)):
            if not rotation:
                rotation = list(eligible)
                rng.shuffle(rotation)
            author = rotation.pop()
            draft = _draft_pair(
                pool, author, positive, negative, n_exemplars, rng, used_chosen, used_rejected, synonyms, mimic
            )
            if draft is not None:
                break
            report.skipped[f"{positive}/{negative}: no usable passage for an author"] += 1
        if draft is None:
            report.skipped[f"{positive}/{negative}: pair not built"] += 1
            continue
        draft["index"] = index
        drafts.append(draft)

    prefix = id_prefix or f"{benchmark}-{split or 'all'}"
    by_strategy: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in drafts:
        by_strategy[(d["positive_kind"], d["strategy_negative"])].append(d)
    odd_label = rng.choice("ab")  # strategies with an odd count take the spare label in turn
    for key in sorted(by_strategy):
        group = by_strategy[key]
        labels = ["a"] * (len(group) // 2) + ["b"] * (len(group) // 2)
        if len(group) % 2:
            labels.append(odd_label)
            odd_label = "b" if odd_label == "a" else "a"
        rng.shuffle(labels)
        for d, label in zip(group, labels, strict=True):
            d["label"] = label
        report.built[key] += len(group)

    pairs = []
    for d in drafts:
        chosen, rejected = d["chosen_text"], d["rejected_text"]
        a, b = (chosen, rejected) if d["label"] == "a" else (rejected, chosen)
        pairs.append(
            {
                "id": f"{prefix}-{d['index']:05d}",
                "query": d["query"],
                "exemplars": d["exemplars"],
                "response_a": a,
                "response_b": b,
                "label": d["label"],
                "positive_kind": d["positive_kind"],
                "negative_kind": d["negative_kind"],
                "author": d["author"],
                "genre": d["genre"],
                "n_exemplars": len(d["exemplars"]),
                "provenance": {
                    "benchmark": benchmark,
                    "split": split or "",
                    "query_mode": query_mode,
                    "chosen_doc_id": d["chosen_doc_id"],
                    "rejected_doc_id": d["rejected_doc_id"],
                    "exemplar_doc_ids": d["exemplar_doc_ids"],
                    "swaps": [f"{w}->{s}" for w, s in d["swaps"]],
                    "year_gap": d["year_gap"],
                },
            }
        )
    if len(pairs) < n_pairs:
        logger.warning("%s: built %d of %d pairs (%s)", where, len(pairs), n_pairs, dict(report.skipped))
    return pairs


def _draft_pair(
    pool: PassagePool,
    author: str,
    positive: str,
    negative: str,
    n_exemplars: int,
    rng: random.Random,
    used_chosen: set[int],
    used_rejected: set[int],
    synonyms: Any,
    mimic: Mimic | None,
) -> dict[str, Any] | None:
    """One unlabelled pair for ``author``, or None when the author has no usable passage left."""
    swaps: list[tuple[str, str]] = []
    if positive == "intra-author-retrieval":
        exemplars = draw_exemplars(pool, author, n_exemplars, rng)
        if exemplars is None:
            return None
        chosen = intra_author_retrieval(pool, author, exemplars, used_chosen)
        if chosen is None:
            return None
        query, chosen_text = pool.responses[chosen]
    else:  # lexical perturbation of a random unused passage (a few tries for enough swappable words)
        rows = [i for i in pool.candidates[author] if i not in used_chosen]
        rng.shuffle(rows)
        found = None
        for chosen in rows[:5]:
            query, original = pool.responses[chosen]
            perturbed = lexical_perturbation(original, synonyms, rng)
            exemplars = draw_exemplars(pool, author, n_exemplars, rng, avoid=chosen)
            if perturbed is not None and exemplars is not None:
                found = (chosen, query, perturbed, exemplars)
                break
        if found is None:
            return None
        chosen, query, (chosen_text, swaps), exemplars = found

    rejected_text = None
    negative_kind = negative
    if negative == "cross-author-retrieval":
        rejected = cross_author_retrieval(pool, chosen, used_rejected)
    elif negative == "random":
        rejected = random_sampling(pool, chosen, rng)
    elif negative == "same-era":
        rejected = same_era_sampling(pool, chosen, rng)
    else:
        rejected, rejected_text, negative_kind = confounding_adversarial(
            pool, chosen, exemplars, used_rejected, mimic, query if pool.query_mode == "opening" else NEUTRAL_QUERY
        )
    if rejected is None and rejected_text is None:
        return None
    if rejected is not None:
        rejected_text = pool.responses[rejected][1]
        used_rejected.add(rejected)
    used_chosen.add(chosen)
    year_gap = None
    if rejected is not None and pool.has_years:
        year_gap = abs(int(pool.docs.at[chosen, "year"]) - int(pool.docs.at[rejected, "year"]))
    return {
        "author": author,
        "genre": str(pool.docs.at[chosen, "genre"]),
        "query": query,
        "exemplars": [pool.text(i) for i in exemplars],
        "exemplar_doc_ids": [str(pool.docs.at[i, "doc_id"]) for i in exemplars],
        "chosen_text": chosen_text,
        "rejected_text": rejected_text,
        "chosen_doc_id": str(pool.docs.at[chosen, "doc_id"]),
        "rejected_doc_id": str(pool.docs.at[rejected, "doc_id"]) if rejected is not None else "",
        "positive_kind": positive,
        "negative_kind": negative_kind,
        "strategy_negative": negative,
        "swaps": swaps,
        "year_gap": year_gap,
    }
