"""The passage pool of one split for :mod:`persrm_lib.data.sampler` (paper §3.1): every response,
chosen or rejected, is cut to exactly ``response_words`` words (length cannot give the label away),
after a ``query_words``-word opening (``query_mode="opening"``, the paper's setup) or under one
fixed instruction (``"neutral"``, :data:`NEUTRAL_QUERY`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import zip_longest

import numpy as np
import pandas as pd

QUERY_MODES: tuple[str, ...] = ("opening", "neutral")
NEUTRAL_QUERY = "Write a passage on a subject of your choice, in your usual style."
_MIN_RESPONSE_WORDS = 10


def response_budget(passage_words: int, query_words: int) -> int:
    """Words per response: ``passage_words - query_words`` (ValueError below 10)."""
    budget = passage_words - query_words
    if budget < _MIN_RESPONSE_WORDS:
        raise ValueError(
            f"passage_words={passage_words} leaves {budget} response words after a query of "
            f"query_words={query_words}; need at least {_MIN_RESPONSE_WORDS}"
        )
    return budget


def query_and_response(text: str, query_mode: str, query_words: int, response_words: int) -> tuple[str, str] | None:
    """The query a passage gives and its response part (exactly ``response_words`` words), or
    ``None`` when the passage is too short. ``opening``: the first ``query_words`` words are the
    query, the response follows them; ``neutral``: :data:`NEUTRAL_QUERY` and the passage's start.
    """
    words = text.split()
    if query_mode == "neutral":
        return (NEUTRAL_QUERY, " ".join(words[:response_words])) if len(words) >= response_words else None
    if len(words) < query_words + response_words:
        return None
    return " ".join(words[:query_words]), " ".join(words[query_words : query_words + response_words])


@dataclass
class PassagePool:
    """The passages one set of pairs is drawn from (``docs``: Document rows of one split of one
    benchmark), with ``vectors``, the unit-norm embeddings of ``docs.text`` in row order.
    ``exemplar_genres``/``candidate_genres``: genres that may give exemplars / responses (None: any).
    """

    docs: pd.DataFrame
    vectors: np.ndarray
    exemplar_genres: tuple[str, ...] | None
    candidate_genres: tuple[str, ...] | None
    query_mode: str
    query_words: int
    response_words: int
    responses: dict[int, tuple[str, str]] = field(init=False)
    candidates: dict[str, list[int]] = field(init=False)
    exemplar_rows: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.docs = self.docs.reset_index(drop=True)
        genre_ok = lambda genres, g: genres is None or g in genres  # noqa: E731
        self.responses = {}
        self.candidates = defaultdict(list)
        self.exemplar_rows = defaultdict(list)
        for i, row in enumerate(self.docs.itertuples(index=False)):
            if genre_ok(self.candidate_genres, row.genre):
                cut = query_and_response(row.text, self.query_mode, self.query_words, self.response_words)
                if cut is not None:
                    self.responses[i] = cut
                    self.candidates[row.author].append(i)
            if genre_ok(self.exemplar_genres, row.genre):
                self.exemplar_rows[row.author].append(i)
        self.authors = sorted(self.candidates)
        self.candidate_array = np.array(sorted(self.responses), dtype=int)
        self.author_of = self.docs["author"].astype(str).to_numpy()
        self.genre_of = self.docs["genre"].astype(str).to_numpy()
        years = self.docs["year"]
        self.has_years = bool(len(years)) and not years.isna().any()

    def author(self, i: int) -> str:
        """The author of row ``i``."""
        return str(self.docs.at[i, "author"])

    def work(self, i: int) -> str:
        """The work (address, essay, chapter) row ``i`` was cut from."""
        return str(self.docs.at[i, "work"])

    def text(self, i: int) -> str:
        """The whole passage of row ``i`` (exemplars are read whole; responses are cut)."""
        return str(self.docs.at[i, "text"])

    def others(self, chosen: int) -> np.ndarray:
        """Candidate rows of every other author, in the chosen passage's genre when any exist
        (a novel is not contrasted with a Federalist paper: genre would give the label away)."""
        rows = self.candidate_array[self.author_of[self.candidate_array] != self.author_of[chosen]]
        same_genre = rows[self.genre_of[rows] == self.genre_of[chosen]]
        return same_genre if len(same_genre) else rows


def draw_exemplars(
    pool: PassagePool, author: str, n: int, rng: random.Random, avoid: int | None = None
) -> list[int] | None:
    """``n`` exemplar rows of ``author``, one per work as far as possible, none from the work of
    row ``avoid`` (the chosen passage); an author with too few other works also gives passages
    of that work that are not the chosen passage or next to it. ``None`` when there are too few.
    """
    rows = pool.exemplar_rows.get(author, [])
    if avoid is not None:
        avoid_work, avoid_pos = pool.work(avoid), int(pool.docs.at[avoid, "position"])
        other_work = [i for i in rows if pool.work(i) != avoid_work]
        same_work = [
            i for i in rows if pool.work(i) == avoid_work and abs(int(pool.docs.at[i, "position"]) - avoid_pos) > 1
        ]
    else:
        other_work, same_work = list(rows), []
    by_work: dict[str, list[int]] = defaultdict(list)
    for i in other_work:
        by_work[pool.work(i)].append(i)
    works = sorted(by_work)
    rng.shuffle(works)
    for w in works:
        rng.shuffle(by_work[w])
    picked = _round_robin([by_work[w] for w in works], n)
    if len(picked) < n:
        extra = sorted(same_work)
        rng.shuffle(extra)
        picked += extra[: n - len(picked)]
    return picked if len(picked) == n else None


def _round_robin(lists: list[list[int]], n: int) -> list[int]:
    """The first ``n`` items taken round-robin: each list's first, then each one's second, ..."""
    return [i for column in zip_longest(*lists) for i in column if i is not None][:n]


def sample_pool(docs: pd.DataFrame, max_per_author: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_per_author`` passages per (author, genre), spread over works, seeded."""
    if max_per_author is None:
        return docs
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for _, group in docs.groupby(["author", "genre"], sort=True):
        if len(group) <= max_per_author:
            keep += list(group.index)
            continue
        by_work = {w: rng.permutation(g.index.to_numpy())[::-1].tolist() for w, g in group.groupby("work", sort=True)}
        works = sorted(by_work)
        rng.shuffle(works)
        keep += _round_robin([by_work[w] for w in works], max_per_author)
    out = docs.loc[sorted(keep)]
    out.attrs = dict(docs.attrs)
    return out
