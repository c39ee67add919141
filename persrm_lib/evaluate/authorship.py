"""Authorship baselines beside the reward model (PersRM-R1 §4): a published verification method
(:class:`LambdaGJudge`) and the best the stylometric evidence alone can do (:class:`EvidenceLRJudge`),
both fitted on the labelled training pairs, never on a test pair.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..core.verdict import check_label, exemplar_count, exemplars_of
from ..data.pairs import swap_pair
from ..data.stylometry import FEATURE_NAMES
from ..teachers.filtering import chosen_rejected
from ..teachers.stylometric import StylometricTeacher
from .judge_base import BaseJudge, LearnsFrom, NotFittedError, Pair, Verdict

# the evidence-lr judge's inputs, in column order: A-minus-B differences of these measurements
EVIDENCE_FEATURES: tuple[str, ...] = (*(f"distance:{name}" for name in FEATURE_NAMES), "char_ngram", "delta")
C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 2, 11))  # evidence-lr's candidate C values
CV_FOLDS = 5  # evidence-lr's cross-validation folds (fewer when there are fewer training pairs)


class TooFewReferencesError(ValueError):
    """LambdaG's reference corpus is smaller than a pair's exemplars: too few training pairs."""


def chosen_response(pair: Pair) -> str:
    """The labelled author's response of a training pair; ValueError naming the pair for a label other than a/b."""
    _label(pair)
    return str(chosen_rejected(pair)[0])


def _label(pair: Pair) -> str:
    """A training pair's label; a ValueError naming the pair."""
    try:
        return check_label(pair.get("label"))
    except ValueError as exc:
        raise ValueError(f"training pair {pair.get('id', '?')!r}: {exc}") from exc


class LambdaGJudge(BaseJudge):
    """LambdaG authorship verification (Nini et al. 2024, "Grammar as a behavioral biometric",
    arXiv 2403.08462; the ``lambdag`` package, MIT).

    A response U's score against the exemplars K is ``lambda_G``: the sum over U's tokens of
    ``log10 p_K(token | context) - log10 p_R(token | context)``, with ``p_K`` a Kneser-Ney n-gram
    model of K's sentences and ``p_R`` one of as many reference sentences, averaged over
    ``num_references`` draws (``LambdaGMethod._lambdag_score``). Uncalibrated; no POSnoise masking
    (it needs a tagger not available offline), so the n-grams carry topic as well as grammar.
    :meth:`fit` builds the reference corpus from the training pairs' exemplars and chosen
    responses, by ``author``; a pair's references leave out the exemplars' author and the two
    responses, drawn with a seed of ``seed`` and the exemplars' text (both responses meet the same).

    ``order`` and ``num_references`` default to the package's example (10, 30: about 0.3-1 s per
    pair on one thread with 80-word passages); ``basis``: whitespace ``tokens`` or ``characters``;
    ``sentenize``: contexts do not cross a sentence end.

    Raises ValueError (fit: no training pairs or a label other than a/b; score: exemplars without a
    word or fewer than asked), TooFewReferencesError (fewer reference sentences than the exemplars
    have), NotFittedError (scoring before :meth:`fit`).
    """

    name = "lambdag"
    learns_from: ClassVar[LearnsFrom] = "labels"

    def __init__(
        self,
        order: int = 10,
        num_references: int = 30,
        basis: str = "tokens",
        lowercasing: bool = False,
        sentenize: bool = True,
        seed: int = 0,
    ) -> None:
        from lambdag import LambdaGMethod

        if basis not in ("tokens", "characters"):
            raise ValueError(f"lambdag: basis must be 'tokens' or 'characters', got {basis!r}")
        if order < 1:
            raise ValueError(f"lambdag: order must be at least 1, got {order}")
        if num_references < 1:
            raise ValueError(f"lambdag: num_references must be at least 1, got {num_references}")
        self.method = LambdaGMethod(
            basis=basis,  # type: ignore[arg-type]
            order=order,
            smoothing="kneser_ney",
            lowercasing=lowercasing,
            sentenize=sentenize,
            num_references=num_references,
            random_seed=seed,
        )
        # memoised: B of a pair draws A's reference samples, so it reuses A's models (cleared between pairs)
        self.fit_language_model = functools.cache(self.method._fit_new_language_model)
        self.method._fit_new_language_model = lambda sentences: self.fit_language_model(tuple(sentences))  # type: ignore[method-assign]
        self.seed = seed
        # the reference corpus: (author, text, sentences), sorted by author then text
        self.references: list[tuple[str, str, list[Any]]] | None = None

    def fit(self, train_pairs: Sequence[Pair]) -> LambdaGJudge:
        if not train_pairs:
            raise ValueError("lambdag: no training pairs to build the reference corpus from")
        author_of: dict[str, str] = {}
        for index, pair in enumerate(train_pairs):
            author = str(pair.get("author") or f"pair {pair.get('id', index)}")
            for text in [*(str(t) for t in pair["exemplars"]), chosen_response(pair)]:
                author_of.setdefault(text, author)  # a text seen twice keeps its first author
        self.references = sorted(
            (author, text, self.method._preprocess_text(text)) for text, author in author_of.items()
        )
        return self

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        """Each response's ``lambda_G`` against the pair's exemplars (higher: more likely the author's)."""
        if self.references is None:
            raise NotFittedError("judge 'lambdag' must be fitted on training pairs first: call fit(train_pairs)")
        verdicts = []
        for pair in pairs:
            exemplars = exemplars_of(pair, n_exemplars)
            known = [sentence for text in exemplars for sentence in self.method._preprocess_text(text)]
            if not any(len(sentence) for sentence in known):
                raise ValueError(f"lambdag: pair {pair.get('id', '?')!r}: the exemplars have no words")
            responses = [str(pair["response_a"]), str(pair["response_b"])]
            references = self._references_for(pair, exemplars, responses)
            if len(references) < len(known):
                raise TooFewReferencesError(
                    f"lambdag: pair {pair.get('id', '?')!r}: {len(references)} reference sentences outside the "
                    f"exemplars' author, fewer than the {len(known)} sentences of its exemplars: fit on more training pairs"
                )
            self.fit_language_model.cache_clear()
            draws = [self.seed, zlib.crc32("\n".join(exemplars).encode())]  # the same draws for both responses
            scores = []
            for response in responses:
                self.method.random_gen = np.random.default_rng(draws)
                scores.append(
                    float(self.method._lambdag_score(known, self.method._preprocess_text(response), references))
                )
            verdicts.append(Verdict(scores[0], scores[1]))
        self.fit_language_model.cache_clear()
        return verdicts

    def _references_for(self, pair: Pair, exemplars: Sequence[str], responses: Sequence[str]) -> list[Any]:
        """The reference sentences for one pair: none by the exemplars' author, none of its responses."""
        assert self.references is not None
        known_texts = set(exemplars)
        excluded_authors = {a for a, text, _ in self.references if text in known_texts}
        if pair.get("author"):
            excluded_authors.add(str(pair["author"]))
        excluded_texts = known_texts | set(responses)
        return [
            sentence
            for author, text, sentences in self.references
            if author not in excluded_authors and text not in excluded_texts
            for sentence in sentences
        ]

    def describe(self) -> dict[str, Any]:
        references = self.references or []
        settings = ("order", "num_references", "basis", "lowercasing", "sentenize")
        return {
            "judge": self.name,
            **{k: getattr(self.method, k) for k in settings},
            "seed": self.seed,
            "reference_authors": len({author for author, _, _ in references}),
            "reference_texts": len(references),
        }


def evidence_features(teacher: StylometricTeacher, pair: Pair, n_exemplars: int | None = None) -> np.ndarray:
    """The evidence-lr inputs of one pair, shape ``(len(EVIDENCE_FEATURES),)``: A minus B of each
    feature's standardised distance to the exemplars, of the character n-gram cosine and of Burrows'
    Delta (:meth:`StylometricTeacher.measure`). Half the difference of both orders' vectors, so
    swapping A and B negates it bit for bit (the n-gram cosine alone differs in its last bits).
    ValueError for fewer exemplars than ``n_exemplars`` (naming the pair).
    """
    measured = {**pair, "n_exemplars": exemplar_count(pair, n_exemplars)}
    return (_a_minus_b(teacher, measured) - _a_minus_b(teacher, swap_pair(measured))) / 2


def _a_minus_b(teacher: StylometricTeacher, pair: Pair) -> np.ndarray:
    measurements, summary = teacher.measure(pair)
    distances = [m.distance_a - m.distance_b for m in measurements]
    return np.array(
        [*distances, summary["char_a"] - summary["char_b"], summary["delta_a"] - summary["delta_b"]], dtype=float
    )


class EvidenceLRJudge(BaseJudge):
    """A logistic regression (scikit-learn) on the stylometric evidence (:func:`evidence_features`).

    :meth:`fit` fits a :class:`~persrm_lib.teachers.stylometric.StylometricTeacher` on the training
    texts, and ``LogisticRegression`` on the training pairs in both orders (the swapped copy's
    features negated, its target flipped), inputs divided by their standard deviation, without an
    intercept: exactly antisymmetric, no position prior. ``s_a = sigmoid(z)``, ``s_b = 1 - s_a``.
    ``C``: the inverse regularisation strength; None: chosen from :data:`C_GRID` by
    :data:`CV_FOLDS`-fold cross-validation on log-loss (``LogisticRegressionCV`` with
    ``GroupKFold``, both orders of a pair in one fold), 1 with fewer than two pairs.

    Raises ValueError (fit: no training pairs or a label other than a/b; score: fewer exemplars
    than asked), NotFittedError (scoring before :meth:`fit`).
    """

    name = "evidence-lr"
    position_invariant = False
    learns_from: ClassVar[LearnsFrom] = "labels"

    def __init__(self, C: float | None = None, seed: int = 0) -> None:
        if C is not None and C <= 0:
            raise ValueError(f"evidence-lr: C must be positive, got {C}")
        self.C = C
        self.fitted_C: float | None = None  # the C of the fitted model (cross-validated when C is None)
        self.seed = seed
        self.teacher = StylometricTeacher()
        self.scale: np.ndarray | None = None  # per-feature standard deviation over both orders
        self.weights: np.ndarray | None = None  # coefficients on the standardised inputs
        self.n_fit_pairs = 0

    def fit(self, train_pairs: Sequence[Pair]) -> EvidenceLRJudge:
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import GroupKFold
        from sklearn.preprocessing import StandardScaler

        if not train_pairs:
            raise ValueError("evidence-lr: no training pairs to fit on")
        targets = np.array([1 if _label(p) == "a" else 0 for p in train_pairs])
        self.teacher.prepare(train_pairs)
        features = np.stack([evidence_features(self.teacher, p) for p in train_pairs])
        both_x = np.vstack([features, -features])
        both_y = np.concatenate([targets, 1 - targets])
        scaler = StandardScaler(with_mean=False).fit(both_x)  # the mean is zero by symmetry
        inputs = both_x / scaler.scale_
        self.fitted_C = self.C if self.C is not None else 1.0 if len(train_pairs) < 2 else None
        if self.fitted_C is None:
            pair_of_row = np.concatenate([np.arange(len(train_pairs))] * 2)  # both orders of a pair: one group
            folds = list(GroupKFold(n_splits=min(CV_FOLDS, len(train_pairs))).split(inputs, both_y, pair_of_row))
            search = LogisticRegressionCV(
                Cs=list(C_GRID), l1_ratios=(0.0,), cv=folds, scoring="neg_log_loss", fit_intercept=False,
                random_state=self.seed, max_iter=1000, use_legacy_attributes=False,
            ).fit(inputs, both_y)  # fmt: skip
            self.fitted_C = float(search.C_)
        model = LogisticRegression(C=self.fitted_C, fit_intercept=False, random_state=self.seed, max_iter=1000)
        model.fit(inputs, both_y)
        self.scale, self.weights = scaler.scale_, model.coef_[0].astype(float)
        self.n_fit_pairs = len(train_pairs)
        return self

    def decision(self, pair: Pair, n_exemplars: int | None = None) -> float:
        """The decision value ``z`` of one pair (log-odds that A is the author's response)."""
        if self.weights is None or self.scale is None:
            raise NotFittedError("judge 'evidence-lr' must be fitted on training pairs first: call fit(train_pairs)")
        return float(np.dot(evidence_features(self.teacher, pair, n_exemplars) / self.scale, self.weights))

    def score_batch(self, pairs: Sequence[Pair], n_exemplars: int | None = None) -> list[Verdict]:
        """``s_a = sigmoid(z)``, ``s_b = sigmoid(-z)`` per pair (one pair at a time: batch-independent)."""
        from scipy.special import expit

        decisions = [self.decision(pair, n_exemplars) for pair in pairs]
        return [Verdict(float(expit(z)), float(expit(-z))) for z in decisions]

    def coefficients(self) -> dict[str, float]:
        """The fitted weight of each :data:`EVIDENCE_FEATURES` input (standardised units); NotFittedError before fit."""
        if self.weights is None:
            raise NotFittedError("judge 'evidence-lr' must be fitted on training pairs first: call fit(train_pairs)")
        return {name: float(w) for name, w in zip(EVIDENCE_FEATURES, self.weights, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "features": len(EVIDENCE_FEATURES),
            "C": self.C,
            "fitted_C": self.fitted_C,
            "seed": self.seed,
            "fit_pairs": self.n_fit_pairs,
        }
