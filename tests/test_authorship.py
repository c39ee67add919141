"""The authorship baselines (persrm_lib.evaluate.authorship): LambdaG and the evidence logistic
regression on hand-made pairs and real State of the Union passages (seconds; LambdaG runs at a
small order and few reference draws here, its defaults are measured in the report)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from eval_fixtures import make_pairs
from real_pairs import real_pairs

from persrm_lib.data.pairs import swap_pair
from persrm_lib.evaluate.authorship import (
    C_GRID,
    EVIDENCE_FEATURES,
    EvidenceLRJudge,
    LambdaGJudge,
    chosen_response,
    evidence_features,
)
from persrm_lib.evaluate.judges import NotFittedError, make_judge
from persrm_lib.evaluate.judging import evaluate_pairs
from persrm_lib.evaluate.suite import BASELINES

SMALL = {"order": 3, "num_references": 5}  # LambdaG settings that keep a test within a second


def lambdag(**settings) -> LambdaGJudge:
    return make_judge("lambdag", **{**SMALL, **settings})


def accuracy(judge, pairs) -> float:
    return sum(v.preferred == p["label"] for v, p in zip(judge.score_batch(pairs), pairs, strict=True)) / len(pairs)


# ---------------------------------------------------------------- the factory and the protocol


@pytest.mark.parametrize(
    ("name", "cls", "position_invariant", "learns_from"),
    [
        ("lambdag", LambdaGJudge, True, "labels"),  # each response on its own; labels say which is the author's
        ("evidence-lr", EvidenceLRJudge, False, "labels"),  # reads A and B together; labels are its targets
    ],
)
def test_make_judge_builds_both_and_the_suite_runs_them(name, cls, position_invariant, learns_from) -> None:
    judge = make_judge(name, seed=5, model="tiny-random", batch_size=3)  # run settings they do not read are ignored
    assert isinstance(judge, cls)
    assert (judge.name, judge.position_invariant, judge.learns_from, judge.seed) == (
        name,
        position_invariant,
        learns_from,
        5,
    )
    assert name in BASELINES


def test_describe_records_the_settings() -> None:
    assert lambdag(seed=2).fit(make_pairs(4)).describe() == {
        "judge": "lambdag",
        "order": 3,
        "num_references": 5,
        "basis": "tokens",
        "lowercasing": False,
        "sentenize": True,
        "seed": 2,
        "reference_authors": 2,
        "reference_texts": 8,  # 4 pairs x (2 exemplars + the chosen response) = 12 texts, 8 distinct
    }
    assert make_judge("evidence-lr").fit(make_pairs(4)).describe() == {
        "judge": "evidence-lr",
        "features": len(EVIDENCE_FEATURES),
        "C": None,  # chosen by cross-validation ...
        "fitted_C": 100.0,  # ... the grid's weakest regularisation: the hand-made styles separate cleanly
        "seed": 0,
        "fit_pairs": 4,
    }


# ---------------------------------------------------------------- LambdaG


def test_lambdag_equals_the_packages_own_lambdag_on_the_same_problem() -> None:
    # the judge's score is the package's public LambdaGMethod.lambdag() for the AV problem (exemplar,
    # response), with the reference corpus less the exemplars' author and the same seeded draws
    from lambdag import LambdaGMethod

    train, pair = make_pairs(8, n_exemplars=1)[:6], make_pairs(8, n_exemplars=1)[6]
    verdict = lambdag(seed=4).fit(train).score(pair)
    others: dict[str, list[str]] = {}
    for p in train:
        author = str(p["author"])
        if author != pair["author"]:
            others.setdefault(author, [])
            texts = [*p["exemplars"], chosen_response(p)]  # the judge also leaves out the two responses' texts
            others[author] += [t for t in texts if t not in others[author] + [pair["response_a"], pair["response_b"]]]
    method = LambdaGMethod("tokens", 3, "kneser_ney", False, True, 5)
    expected = []
    for response in (pair["response_a"], pair["response_b"]):
        method.random_gen = np.random.default_rng([4, zlib.crc32(pair["exemplars"][0].encode())])
        problem = [(pair["exemplars"][0], pair["author"], response, "unknown")]
        expected.append(float(method.lambdag(problem, {a: sorted(t) for a, t in sorted(others.items())})[0]))
    assert (verdict.s_a, verdict.s_b) == (expected[0], expected[1])


def test_lambdag_on_a_tiny_handmade_case() -> None:
    # B repeats the exemplar's sentence: a far higher likelihood under the author's model than A
    train = [
        {"id": "t1", "author": "x", "exemplars": ["Dogs bark at night."], "response_a": "Birds sing at dawn.",
         "response_b": "Fish swim in rivers.", "label": "a"},
        {"id": "t2", "author": "y", "exemplars": ["Fish swim in rivers."], "response_a": "Cows eat grass daily.",
         "response_b": "Rain falls in spring.", "label": "b"},
    ]  # fmt: skip
    pair = {"id": "p", "author": "z", "exemplars": ["The cat sat on the mat."],
            "response_a": "Dogs bark at night.", "response_b": "The cat sat on the mat.", "label": "b"}  # fmt: skip
    verdict = make_judge("lambdag", order=2, num_references=1).fit(train).score(pair)
    assert (round(verdict.s_a, 6), round(verdict.s_b, 6)) == (-0.630643, 3.083607)
    assert verdict.preferred == "b"


def test_lambdag_is_position_invariant_and_batch_independent() -> None:
    pairs = real_pairs()
    judge = lambdag().fit(pairs[:6])
    alone = [judge.score(p) for p in pairs[6:]]
    batch = judge.score_batch(pairs[6:])
    swapped = judge.score_batch([swap_pair(p) for p in pairs[6:]])
    assert [v.scores for v in batch] == [v.scores for v in alone]  # a pair's score ignores the rest of the batch
    assert [[v.s_b, v.s_a] for v in swapped] == [v.scores for v in batch]  # swapping A and B swaps the scores


def test_lambdag_references_leave_out_the_exemplars_author() -> None:
    pairs = make_pairs(8, n_exemplars=1)
    judge = lambdag().fit(pairs)
    pair = pairs[0]  # the formal author: a training author too
    references = judge._references_for(pair, pair["exemplars"], [pair["response_a"], pair["response_b"]])
    formal = {s for a, _, sents in judge.references if a == "formal" for s in sents}
    assert references and not formal & set(references)


# ---------------------------------------------------------------- evidence-lr


def test_evidence_features_are_antisymmetric_bit_for_bit() -> None:
    judge = make_judge("evidence-lr").fit(real_pairs()[:6])
    for pair in real_pairs()[6:]:
        features = evidence_features(judge.teacher, pair)
        assert features.shape == (len(EVIDENCE_FEATURES),)
        assert np.array_equal(evidence_features(judge.teacher, swap_pair(pair)), -features)


def test_evidence_lr_swapping_a_and_b_swaps_the_scores_exactly() -> None:
    pairs = real_pairs()
    judge = make_judge("evidence-lr").fit(pairs[:6])
    verdicts = judge.score_batch(pairs[6:])
    swapped = judge.score_batch([swap_pair(p) for p in pairs[6:]])
    assert [[v.s_b, v.s_a] for v in swapped] == [v.scores for v in verdicts]
    assert all(v.s_a + v.s_b == pytest.approx(1.0, abs=1e-12) for v in verdicts)  # s_b = 1 - s_a


def test_evidence_lr_has_no_position_prior() -> None:
    # trained on pairs that ALL put the author's response in slot A, it still cannot prefer a slot:
    # identical responses give a zero decision and a tie
    one_sided = [p if p["label"] == "a" else swap_pair(p) for p in make_pairs(8)]
    judge = make_judge("evidence-lr").fit(one_sided)
    pair = dict(make_pairs(8)[0], response_b=make_pairs(8)[0]["response_a"])
    assert judge.decision(pair) == 0.0
    assert judge.score(pair).scores == [0.5, 0.5]
    assert judge.score(pair).preferred is None


def test_evidence_lr_learns_the_handmade_styles() -> None:
    judge = make_judge("evidence-lr").fit(make_pairs(8))
    assert [v.preferred for v in judge.score_batch(make_pairs(8))] == [p["label"] for p in make_pairs(8)]
    weights = judge.coefficients()
    assert list(weights) == list(EVIDENCE_FEATURES)
    assert weights["char_ngram"] > 0  # a higher n-gram cosine for A means A (A minus B)


@pytest.mark.parametrize(
    ("C", "n_pairs", "fitted_C"),
    [
        (None, 1, 1.0),  # one pair: nothing to cross-validate, C is 1
        (None, 6, 0.001),  # real passages, 6 pairs: the grid's strongest regularisation
        (0.5, 6, 0.5),  # a C given is used as it is
    ],
)
def test_evidence_lr_regularisation(C, n_pairs: int, fitted_C: float) -> None:
    judge = make_judge("evidence-lr", C=C).fit(real_pairs()[:n_pairs])
    assert judge.fitted_C == pytest.approx(fitted_C)
    assert C_GRID[0] == pytest.approx(0.001) and C_GRID[-1] == pytest.approx(100.0) and len(C_GRID) == 11


# ---------------------------------------------------------------- both: real text, determinism, evaluation


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: lambdag(), 4 / 6),  # LambdaG at order 3, 5 draws: 4 of the 6 held-out real pairs
        (lambda: make_judge("evidence-lr"), 4 / 6),  # the evidence regression: 4 of 6
    ],
)
def test_accuracy_on_real_pairs_fit_on_the_others(make, expected: float) -> None:
    pairs = real_pairs()  # 12 State of the Union pairs: fit on the even ones, score the odd ones
    assert accuracy(make().fit(pairs[::2]), pairs[1::2]) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["lambdag", "evidence-lr"])
def test_two_fits_give_the_same_scores(name: str) -> None:
    pairs = real_pairs()
    first = make_judge(name, **(SMALL if name == "lambdag" else {})).fit(pairs[:6]).score_batch(pairs[6:])
    second = make_judge(name, **(SMALL if name == "lambdag" else {})).fit(pairs[:6]).score_batch(pairs[6:])
    assert [v.scores for v in first] == [v.scores for v in second]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lambdag", [False, True, True, False, False, True]),  # each response on its own: swapped scores exchanged
        ("evidence-lr", [True, True, True, True, False, True]),  # swapped pairs scored for real
    ],
)
def test_evaluate_pairs_runs_both_in_both_orders(name: str, expected: list) -> None:
    pairs = real_pairs()
    judge = make_judge(name, **(SMALL if name == "lambdag" else {})).fit(pairs[:6])
    table = evaluate_pairs(judge, pairs[6:])
    assert table["correct"].tolist() == expected
    assert (table["original_preferred"] != table["swapped_preferred"]).all()  # order-consistent, by construction


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("lambdag", "judge 'lambdag' must be fitted on training pairs first: call fit(train_pairs)"),
        ("evidence-lr", "judge 'evidence-lr' must be fitted on training pairs first: call fit(train_pairs)"),
    ],
)
def test_scoring_before_fit_is_refused(name: str, message: str) -> None:
    with pytest.raises(NotFittedError) as caught:
        make_judge(name).score(make_pairs(1)[0])
    assert str(caught.value) == message


@pytest.mark.parametrize("name", ["lambdag", "evidence-lr"])
def test_fewer_exemplars_than_asked_is_refused(name: str) -> None:
    judge = make_judge(name, **(SMALL if name == "lambdag" else {})).fit(make_pairs(4))
    with pytest.raises(ValueError) as caught:
        judge.score(make_pairs(1, n_exemplars=1)[0], n_exemplars=3)
    assert str(caught.value) == "pair 'pair-00' has 1 exemplar(s), 3 requested"


@pytest.mark.parametrize(
    ("name", "train", "message"),
    [
        # no training pairs at all
        ("lambdag", [], "lambdag: no training pairs to build the reference corpus from"),
        ("evidence-lr", [], "evidence-lr: no training pairs to fit on"),
        # a training label that is neither a nor b, naming the pair
        ("lambdag", [dict(make_pairs(1)[0], label="c")], "training pair 'pair-00': label must be 'a' or 'b', got 'c'"),
        ("evidence-lr", [dict(make_pairs(1)[0], label=None)], "training pair 'pair-00': label must be 'a' or 'b', got None"),
    ],
)  # fmt: skip
def test_bad_training_pairs_are_refused(name: str, train: list, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_judge(name).fit(train)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("pair_changes", "message"),
    [
        # exemplars with no word: nothing to model the author on
        ({"exemplars": ["   "]}, "lambdag: pair 'pair-02': the exemplars have no words"),
        # three sentences of exemplars against a reference corpus of two sentences (one other author)
        (
            {"exemplars": ["One. Two. Three."], "author": "someone"},
            "lambdag: pair 'pair-02': 2 reference sentences outside the exemplars' author, fewer than the 3 "
            "sentences of its exemplars: fit on more training pairs",
        ),
    ],
)
def test_lambdag_refuses_what_it_cannot_score(pair_changes: dict, message: str) -> None:
    train = [{"id": "t", "author": "x", "exemplars": ["Dogs bark."], "response_a": "Birds sing.",
              "response_b": "Fish swim.", "label": "a"}]  # fmt: skip
    judge = lambdag().fit(train)
    with pytest.raises(ValueError) as caught:
        judge.score(dict(make_pairs(3, n_exemplars=1)[2], **pair_changes))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("lambdag", {"order": 0}, "lambdag: order must be at least 1, got 0"),
        ("lambdag", {"num_references": 0}, "lambdag: num_references must be at least 1, got 0"),
        ("lambdag", {"basis": "words"}, "lambdag: basis must be 'tokens' or 'characters', got 'words'"),
        ("evidence-lr", {"C": 0.0}, "evidence-lr: C must be positive, got 0.0"),
    ],
)
def test_bad_settings_are_refused(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_judge(name, **settings)
    assert str(caught.value) == message
