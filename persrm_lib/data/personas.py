"""Controlled-style personas: a benchmark whose style criteria are known exactly.

A *persona* is a set of deterministic style operators (lowercase everything, ``&`` for "and", …)
applied to real passages from the offline corpora. Content, genre and the original author vary
freely and carry no signal; the only thing that tells a persona's text from another's is the
operators. So the criteria a reward model should name are known (the persona's operators), every
check it writes can be verified against a detector, and the label is correct by construction.

The operators follow the content-independent style features of STEL (Wegmann & Nguyen, 2021) and
StyleDistance/SynthSTEL (Patel et al., 2025): punctuation habits, casing, contractions. Each
operator has a detector; a passage is used for a persona only where :func:`shows` finds exactly
the persona's operators on the rewritten text (a passage without a sentence-final period cannot
show ``exclamation``; one that already writes ``&`` cannot be a persona without ``ampersand``).

The paper's five sampling strategies (PersRM-R1 §3.2) map onto personas:

- intra-author retrieval: another passage rewritten in the same persona;
- lexical perturbation: the chosen passage with 3-4 words swapped for WordNet synonyms, then
  rewritten in the persona (still the persona);
- cross-author retrieval: the topically nearest passage (TF-IDF cosine) in another persona;
- random: a random passage in a random other persona;
- confounding adversarial: the chosen passage itself in a persona that differs in exactly one
  operator ("one feature off": one removed or one added, each half the time).

Retrieved and random negatives come from a persona with as many operators as the chosen one, and
adversarial ones add an operator as often as they remove one, so how unusual a text looks says
nothing about the label: a query-only judge (the base model's log-likelihood of each response
without the exemplars) stays near chance (``benchmarks/persona_leaks.py``).

>>> apply_persona(("ampersand", "lowercase"), "Peace and Order, at home.")
'peace & order, at home.'
>>> sorted(shows("peace & order, at home."))
['ampersand', 'lowercase']
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATALOGUE",
    "CLASHES",
    "OPERATORS",
    "PERSONA_NEGATIVE_KINDS",
    "PERSONA_POSITIVE_KINDS",
    "PersonaSplit",
    "StyleOperator",
    "apply_persona",
    "build_persona_pairs",
    "check_persona",
    "is_persona_pair",
    "persona_base_passages",
    "true_operators",
    "one_off_personas",
    "persona_name",
    "persona_splits",
    "shows",
    "usable",
    "valid_personas",
]

# --------------------------------------------------------------------------------------------
# The operators
# --------------------------------------------------------------------------------------------

_SENTENCE_END_DOT = re.compile(r"(?<!\.)\.(?!\.)(?=\s|$)")  # a single '.' followed by whitespace or the end
_AND = re.compile(r"\band\b")
_WORD_START_LOWER = re.compile(r"(?<![\w'\u2019&])[a-z]")

# Contractions: (full form, contraction); each full form is matched as whole words, in lower case and
# with a capital first letter ("It is" -> "It's").
CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"), ("is not", "isn't"),
    ("are not", "aren't"), ("was not", "wasn't"), ("were not", "weren't"), ("have not", "haven't"),
    ("has not", "hasn't"), ("will not", "won't"), ("would not", "wouldn't"), ("should not", "shouldn't"),
    ("could not", "couldn't"), ("cannot", "can't"), ("it is", "it's"), ("that is", "that's"),
    ("there is", "there's"), ("we are", "we're"), ("they are", "they're"), ("you are", "you're"),
    ("we have", "we've"), ("we will", "we'll"), ("they will", "they'll"), ("i am", "i'm"),
    ("i will", "i'll"), ("let us", "let's"),
)  # fmt: skip


def _cased(pattern: str) -> str:
    """A regex matching ``pattern`` in lower case or with its first letter capitalised."""
    head, rest = pattern[0], re.escape(pattern[1:]).replace(r"\ ", r"\s+")
    return rf"\b[{head}{head.upper()}]{rest}\b"


_CONTRACTION_RES = [(re.compile(_cased(full)), short) for full, short in CONTRACTIONS]
_FULL_FORM_RE = re.compile("|".join(_cased(full) for full, _ in CONTRACTIONS))
_SHORT_FORM_RE = re.compile("|".join(rf"\b{re.escape(short)}\b" for _, short in CONTRACTIONS), re.IGNORECASE)


def _contract(text: str) -> str:
    for regex, short in _CONTRACTION_RES:
        text = regex.sub(lambda m, s=short: (s[0].upper() + s[1:]) if m.group(0)[0].isupper() else s, text)
    return text


def _title_case(text: str) -> str:
    return _WORD_START_LOWER.sub(lambda m: m.group(0).upper(), text)


@dataclass(frozen=True)
class StyleOperator:
    """One deterministic, content-independent style operator and its detector.

    Attributes:
        name: the operator's name, also the criterion a reward model writes for it.
        description: what it does, in one line (shown in 01 and in the teacher's criteria legend).
        rewrite: ``str -> str``, the operator (deterministic, idempotent).
        detect: ``str -> bool``, whether a text shows the feature (judged on the finished text of
            a whole persona, so a detector also checks that the unrewritten form is absent).
    """

    name: str
    description: str
    rewrite: Callable[[str], str]
    detect: Callable[[str], bool]


# Application order matters: lowercase before ampersand and contractions (a sentence-initial
# "And" or "It is" is caught once lowercased); title case after both.
CATALOGUE: tuple[StyleOperator, ...] = (
    StyleOperator(
        "lowercase", "the whole text lowercased",
        str.lower,
        lambda t: any(c.isalpha() for c in t) and not any(c.isupper() for c in t),
    ),
    StyleOperator(
        "contractions", "'do not', 'it is', 'we will' … contracted ('don't', 'it's', 'we'll')",
        _contract,
        lambda t: bool(_SHORT_FORM_RE.search(t)) and not _FULL_FORM_RE.search(t),
    ),
    StyleOperator(
        "ampersand", "every standalone word 'and' written '&'",
        lambda t: _AND.sub("&", t),
        lambda t: " & " in f" {t} " and not _AND.search(t),
    ),
    StyleOperator(
        "em_dash", "every ', ' written ' \u2014 ' (a spaced em dash)",
        lambda t: t.replace(", ", " \u2014 "),
        lambda t: " \u2014 " in t and ", " not in t,
    ),
    StyleOperator(
        "no_commas", "every comma removed",
        lambda t: t.replace(",", ""),
        lambda t: "," not in t and " \u2014 " not in t,
    ),
    StyleOperator(
        "exclamation", "every sentence-final '.' written '!'",
        lambda t: _SENTENCE_END_DOT.sub("!", t),
        lambda t: bool(re.search(r"!(?=\s|$)", t)) and not _SENTENCE_END_DOT.search(t),
    ),
    StyleOperator(
        "ellipsis", "every sentence-final '.' written '...'",
        lambda t: _SENTENCE_END_DOT.sub("...", t),
        lambda t: bool(re.search(r"\.\.\.(?=\s|$)", t)) and not _SENTENCE_END_DOT.search(t),
    ),
    StyleOperator(
        "title_case", "every word capitalised",
        _title_case,
        lambda t: any(c.isalpha() for c in t) and not _WORD_START_LOWER.search(t),
    ),
)  # fmt: skip
OPERATORS: dict[str, StyleOperator] = {op.name: op for op in CATALOGUE}
_ORDER = {op.name: i for i, op in enumerate(CATALOGUE)}

# Operators that rewrite the same thing and so never share a persona.
CLASHES: tuple[frozenset[str], ...] = (
    frozenset({"exclamation", "ellipsis"}),
    frozenset({"em_dash", "no_commas"}),
    frozenset({"lowercase", "title_case"}),
)

MAX_LENGTH_RATIO = 1.5  # base passages longer than this many times passage_words are not used
PERSONA_POSITIVE_KINDS: tuple[str, ...] = ("intra-author-retrieval", "lexical-perturbation")
PERSONA_NEGATIVE_KINDS: tuple[str, ...] = ("cross-author-retrieval", "random", "adversarial")

Persona = tuple[str, ...]


def check_persona(persona: Iterable[str], where: str = "persona") -> Persona:
    """The persona as a tuple of operator names in application order.

    Raises:
        ValueError: an unknown operator, a repeated one, or two that clash (naming ``where``).
    """
    names = list(persona) if not isinstance(persona, str) else [persona]
    unknown = sorted(set(names) - set(OPERATORS))
    if unknown:
        raise ValueError(f"{where}: unknown style operator(s) {unknown}; known: {[op.name for op in CATALOGUE]}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: an operator is repeated in {names}")
    for clash in CLASHES:
        if clash <= set(names):
            raise ValueError(f"{where}: operators {sorted(clash)} clash and never share a persona")
    return tuple(sorted(names, key=_ORDER.__getitem__))


def persona_name(persona: Iterable[str]) -> str:
    """``'ampersand+lowercase'`` style name (sorted alphabetically); ``'plain'`` for no operator."""
    names = sorted(persona)
    return "+".join(names) if names else "plain"


def apply_persona(persona: Iterable[str], text: str) -> str:
    """Rewrite ``text`` with every operator of ``persona``, in the catalogue's order."""
    for name in check_persona(persona):
        text = OPERATORS[name].rewrite(text)
    return text


def shows(text: str) -> frozenset[str]:
    """The operators whose detector fires on ``text`` (the persona a reader would infer)."""
    return frozenset(op.name for op in CATALOGUE if op.detect(text))


def usable(persona: Iterable[str], text: str) -> bool:
    """Whether ``text`` rewritten in ``persona`` shows exactly the persona's operators, each of
    which the rewrite made visible (the unrewritten ``text`` shows none of them: a passage without
    a comma is not used for ``no_commas``, an already lowercase one not for ``lowercase``)."""
    wanted = frozenset(persona)
    return not (shows(text) & wanted) and shows(apply_persona(persona, text)) == wanted


def valid_personas(operators: Sequence[str], max_size: int, min_size: int = 0) -> list[Persona]:
    """Every clash-free persona of ``min_size``..``max_size`` operators drawn from ``operators``."""
    out: list[Persona] = []
    for size in range(min_size, max_size + 1):
        for combo in itertools.combinations(sorted(operators, key=_ORDER.__getitem__), size):
            if not any(clash <= set(combo) for clash in CLASHES):
                out.append(tuple(combo))
    return out


def one_off_personas(persona: Persona, allowed: Sequence[str]) -> list[Persona]:
    """Personas that differ from ``persona`` in exactly one operator (one added or one removed),
    using only ``allowed`` operators for the one added."""
    out = [tuple(x for x in persona if x != drop) for drop in persona]
    for add in allowed:
        if add not in persona and not any(clash <= {*persona, add} for clash in CLASHES):
            out.append(check_persona((*persona, add)))
    return out


# --------------------------------------------------------------------------------------------
# Splits and pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonaSplit:
    """Which personas a split's chosen responses (and negatives) come from.

    Attributes:
        targets: the personas whose exemplars and chosen responses the split uses.
        negatives: the personas its retrieved and random rejected responses may come from when
            no other target has as many operators as the chosen persona (otherwise another target
            with as many operators is drawn).
        operators: the operators the split may show at all (an adversarial negative adds or
            removes one of them).
    """

    targets: tuple[Persona, ...]
    negatives: tuple[Persona, ...]
    operators: tuple[str, ...]


def persona_splits(held_out_operator: str, max_size: int, test_share: float, seed: int) -> dict[str, PersonaSplit]:
    """Training personas and unseen test personas.

    ``held_out_operator`` is never shown in training or validation; the test split's targets are
    the combinations of two or more operators held out of training (``test_share`` of them, by a
    seeded shuffle) plus every persona that holds the held-out operator. Single-operator personas
    stay in training (each operator must be taught on its own once).

    Raises:
        ValueError: an unknown operator, ``max_size`` outside 1..4, ``test_share`` outside (0, 1).
    """
    check_persona([held_out_operator], "held_out_operator")
    if not 1 <= max_size <= 4:
        raise ValueError(f"max_size must be in 1..4, got {max_size}")
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    taught = [op.name for op in CATALOGUE if op.name != held_out_operator]
    seen = valid_personas(taught, max_size, min_size=1)
    combos = [p for p in seen if len(p) >= 2]
    rng = random.Random(seed)
    rng.shuffle(combos)
    held = set(combos[: max(1, round(test_share * len(combos)))])
    train = tuple(p for p in seen if p not in held)
    every = valid_personas([op.name for op in CATALOGUE], max_size, min_size=1)
    test = tuple(p for p in every if p in held or held_out_operator in p)
    return {
        "train": PersonaSplit(train, train, tuple(taught)),
        "validation": PersonaSplit(train, train, tuple(taught)),
        "test": PersonaSplit(test, tuple(every), tuple(op.name for op in CATALOGUE)),
    }


def _nearest(texts: Sequence[str]) -> np.ndarray:
    """For each text, the other texts ordered by TF-IDF cosine (nearest first), as row indices."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(lowercase=True, stop_words="english").fit_transform(list(texts))
    sims = (matrix @ matrix.T).toarray()
    np.fill_diagonal(sims, -1.0)
    return np.argsort(-sims, axis=1, kind="stable")


def build_persona_pairs(
    docs: pd.DataFrame,
    split: PersonaSplit,
    n_pairs: int,
    n_exemplars: int,
    seed: int,
    *,
    query: str,
    synonyms: Any = None,
    id_prefix: str = "personas",
    strategies: Sequence[tuple[str, str]] | None = None,
    split_name: str = "",
) -> list[dict[str, Any]]:
    """Build ``n_pairs`` persona pairs from one split's base passages.

    Strategies ((positive, negative) kinds) are taken in turn; target personas in a seeded
    rotation. Every text of a pair (exemplars, chosen, rejected) comes from a different base
    passage, except the adversarial negative, which rewrites the chosen passage itself.

    Args:
        docs: base passages (a Document table: ``doc_id``, ``text``, ``genre``, ``source``).
        split: the split's personas (:func:`persona_splits`).
        n_pairs: how many pairs.
        n_exemplars: exemplars per pair (each shows the persona's every operator).
        seed: the run's seed; the pairs are a function of it and the inputs.
        query: the neutral instruction both responses answer (the same for both, so the query
            gives nothing away).
        synonyms: a :class:`persrm_lib.data.synonyms.WordNetSynonyms` for lexical perturbation
            (required when a strategy uses it).
        split_name: recorded in ``provenance``.
        id_prefix: prefix of the pair ids.
        strategies: (positive, negative) kinds to rotate through (default: all six).

    Returns:
        Pairs in the project's pair contract plus ``persona`` (the operators of the exemplars and
        the chosen response) and ``rejected_persona`` (those of the rejected response): named by
        role, not position, so a swapped pair stays right. ``author`` is the persona's name;
        ``provenance`` holds the benchmark, split, base passages' ``doc_id`` and synonym swaps.

    Raises:
        ValueError: too few base passages for the personas, or an unknown strategy.
    """
    from .sampler import SWAPS

    strategies = list(strategies or [(p, n) for p in PERSONA_POSITIVE_KINDS for n in PERSONA_NEGATIVE_KINDS])
    for positive, negative in strategies:
        if positive not in PERSONA_POSITIVE_KINDS or negative not in PERSONA_NEGATIVE_KINDS:
            raise ValueError(
                f"unknown persona strategy ({positive!r}, {negative!r}); positives {PERSONA_POSITIVE_KINDS}, "
                f"negatives {PERSONA_NEGATIVE_KINDS}"
            )
    texts = docs["text"].tolist()
    ids = docs["doc_id"].tolist()
    genres = docs["genre"].tolist()
    if len(texts) < n_exemplars + 3:
        raise ValueError(f"{len(texts)} base passages are too few for pairs with {n_exemplars} exemplars")
    rng = random.Random(seed)
    nearest = _nearest(texts)
    usable_cache: dict[tuple[Persona, int], bool] = {}

    def ok(persona: Persona, i: int) -> bool:
        key = (persona, i)
        if key not in usable_cache:
            usable_cache[key] = usable(persona, texts[i])
        return usable_cache[key]

    def draw(persona: Persona, taken: set[int], tries: int = 400) -> int | None:
        for _ in range(tries):
            i = rng.randrange(len(texts))
            if i not in taken and ok(persona, i):
                return i
        return None

    targets = list(split.targets)
    flips = [rng.randrange(2) for _ in strategies]
    adversarial_flip = rng.randrange(2)
    n_adversarial = 0  # adversarial pairs built so far
    pairs: list[dict[str, Any]] = []
    attempts = 0
    while len(pairs) < n_pairs:
        attempts += 1
        if attempts > 50 * n_pairs + 100:
            raise ValueError(
                f"could build only {len(pairs)} of {n_pairs} persona pairs from {len(texts)} base passages: "
                "too few passages show the personas' operators (use longer passages or more of them)"
            )
        positive, negative = strategies[len(pairs) % len(strategies)]
        persona = targets[rng.randrange(len(targets))]
        taken: set[int] = set()
        exemplar_ids: list[int] = []
        for _ in range(n_exemplars):
            i = draw(persona, taken)
            if i is None:
                break
            exemplar_ids.append(i)
            taken.add(i)
        if len(exemplar_ids) < n_exemplars:
            continue
        chosen_i = draw(persona, taken)
        if chosen_i is None:
            continue
        taken.add(chosen_i)
        base = texts[chosen_i]
        positive_kind = positive
        swaps_made: list[tuple[str, str]] = []
        if positive == "lexical-perturbation":
            if synonyms is None:
                raise ValueError("lexical perturbation needs synonyms (a WordNetSynonyms)")
            candidate, swaps_made = synonyms.perturb(base, rng, rng.choice(SWAPS))
            if len(swaps_made) < min(SWAPS) or not usable(persona, candidate):  # the paper swaps 3-4 words
                continue
            base = candidate
        chosen = apply_persona(persona, base)
        if negative == "adversarial":
            # one operator removed or one added, each half the time where both can be: the rejected
            # text is then no more (or less) natural than the chosen one on average, so a judge of
            # naturalness alone (the query-only log-likelihood) cannot tell them apart
            options = [q for q in one_off_personas(persona, split.operators) if usable(q, base)]
            drops = [q for q in options if len(q) < len(persona)]
            adds = [q for q in options if len(q) > len(persona)]
            # removal and addition alternate over the adversarial pairs built (a pair whose kind
            # cannot be made here is drawn again): a fallback would tilt the balance to removals
            options = adds if (n_adversarial + adversarial_flip) % 2 else drops
            if not options:
                continue
            rejected_persona = options[rng.randrange(len(options))]
            rejected_i = chosen_i
            rejected = apply_persona(rejected_persona, base)
        else:
            # another persona with as many operators: operator count (how unusual the text looks)
            # says nothing about the label
            # drawn from the split's own targets where it can be, so each persona is chosen and
            # rejected about equally often
            others = [q for q in split.targets if q != persona and len(q) == len(persona)]
            others = others or [q for q in split.negatives if q != persona and len(q) == len(persona)]
            if not others:
                continue
            rejected_persona = others[rng.randrange(len(others))]
            if negative == "random":
                found = draw(rejected_persona, taken)
            else:  # cross-author retrieval: the topically nearest passage usable in the other persona
                found = next(
                    (int(j) for j in nearest[chosen_i][:50] if j not in taken and ok(rejected_persona, j)), None
                )
            if found is None:
                continue
            rejected_i = found
            rejected = apply_persona(rejected_persona, texts[rejected_i])
        if rejected == chosen:
            continue
        # labels alternate within each strategy from a seeded start, so neither position nor
        # strategy predicts the label
        k = len(pairs) // len(strategies)
        label = "ab"[(k + flips[len(pairs) % len(strategies)]) % 2]
        a, b = (chosen, rejected) if label == "a" else (rejected, chosen)
        n_adversarial += negative == "adversarial"
        pairs.append(
            {
                "id": f"{id_prefix}-{len(pairs):05d}",
                "query": query,
                "exemplars": [apply_persona(persona, texts[i]) for i in exemplar_ids],
                "response_a": a,
                "response_b": b,
                "label": label,
                "positive_kind": positive_kind,
                "negative_kind": negative,
                "author": persona_name(persona),
                "genre": genres[chosen_i],
                "n_exemplars": n_exemplars,
                "persona": list(persona),
                "rejected_persona": list(rejected_persona),
                "provenance": {
                    "benchmark": "personas",
                    "split": split_name,
                    "chosen_doc_id": ids[chosen_i],
                    "rejected_doc_id": ids[rejected_i],
                    "exemplar_doc_ids": [ids[i] for i in exemplar_ids],
                    "swaps": [f"{w}->{s}" for w, s in swaps_made],
                },
            }
        )
    return pairs


def operator_visibility(texts: Sequence[str]) -> dict[str, float]:
    """Share of ``texts`` on which each single operator is usable (:func:`usable`)."""
    return {
        op.name: float(np.mean([usable((op.name,), t) for t in texts])) if texts else float("nan") for op in CATALOGUE
    }


def true_operators(pair: Mapping[str, Any], side: str) -> frozenset[str]:
    """The operators a persona pair's response (``side`` 'a' or 'b') or its exemplars
    (``'exemplars'``) were written with, from the pair's record (not from a detector).

    Raises:
        ValueError: ``side`` is none of 'a', 'b', 'exemplars'.
        KeyError: the pair is not a persona pair (no ``persona``/``rejected_persona``).
    """
    if side not in ("a", "b", "exemplars"):
        raise ValueError(f"side must be 'a', 'b' or 'exemplars', got {side!r}")
    if side == "exemplars" or side == pair["label"]:
        return frozenset(pair["persona"])
    return frozenset(pair["rejected_persona"])


def is_persona_pair(pair: Mapping[str, Any]) -> bool:
    """Whether a pair comes from the persona benchmark (it records its personas)."""
    return "persona" in pair and "rejected_persona" in pair


def persona_base_passages(
    passage_words: int, max_per_source: int = 1000, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)
) -> pd.DataFrame:
    """Base passages for personas from every offline corpus (sotu, aaac, literature), split by work.

    Every work (a speech, a paper, a book) goes wholly to one split, so test passages are unseen
    text. At most ``max_per_source`` passages per source and split are kept (a seeded sample), so
    the TF-IDF retrieval of cross-author negatives stays small.

    Args:
        passage_words: passage length in words (short passages keep prompts short).
        max_per_source: cap per source and split.
        seed: the sample and the work split are functions of it.
        fractions: shares of works for (val, test).

    Returns:
        A Document table with ``split`` in {train, validation, test} and the original ``author`` kept
        (content and author carry no signal on personas; they are kept for audits).
    """
    from .corpora import load_aaac, load_literature, load_sotu

    tables = []
    skipped: dict[str, int] = {}
    for source, table in (
        ("sotu", load_sotu(passage_words)),
        ("aaac", load_aaac(passage_words)),
        ("literature", load_literature(passage_words)),
    ):
        works = sorted(set(table["work"]))
        random.Random(f"{seed}-{source}").shuffle(works)
        n_val, n_test = (max(1, round(f * len(works))) for f in fractions)
        split_of = {w: "validation" for w in works[:n_val]} | {w: "test" for w in works[n_val : n_val + n_test]}
        table = table.assign(split=[split_of.get(w, "train") for w in table["work"]], source=source)
        # passages end on sentence boundaries, so one long sentence makes a long passage: keep the
        # short ones (prompt length, and every sentence-final operator has a sentence end to show on)
        for reason, count in table.attrs.get("skipped", {}).items():
            skipped[reason] = skipped.get(reason, 0) + int(count)
        short = table["text"].str.split().str.len() <= round(MAX_LENGTH_RATIO * passage_words)
        skipped["passages too long for personas"] = skipped.get("passages too long for personas", 0) + int(
            (~short).sum()
        )
        table = table[short]
        for split in ("train", "validation", "test"):
            part = table[table["split"] == split]
            if len(part) > max_per_source:
                part = part.sample(n=max_per_source, random_state=seed)
            tables.append(part)
    out = pd.concat(tables, ignore_index=True)
    out = out.sort_values(["split", "source", "doc_id"], kind="stable").reset_index(drop=True)
    out.attrs["skipped"] = dict(sorted(skipped.items()))
    return out
