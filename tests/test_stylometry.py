"""Stylometric features: hand-computed values, edge cases, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from persrm_lib.data import stylometry
from persrm_lib.data.stylometry import (
    FEATURE_NAMES,
    FUNCTION_WORDS,
    char_ngram_similarity,
    describe,
    feature_matrix,
    mattr,
    sentences,
    style_features,
    words,
    yules_k,
)


def test_function_words_are_unique_lowercase_and_stable() -> None:
    assert len(FUNCTION_WORDS) == len(set(FUNCTION_WORDS)) == 100
    assert all(w == w.lower() and w.isalpha() for w in FUNCTION_WORDS)
    # the order is part of the API (feature columns); spot-check both ends
    assert FUNCTION_WORDS[:3] == ("a", "about", "after") and FUNCTION_WORDS[-1] == "your"


def test_feature_names_cover_scalars_then_function_words() -> None:
    assert FEATURE_NAMES[: len(stylometry.SCALAR_FEATURES)] == tuple(stylometry.SCALAR_FEATURES)
    assert FEATURE_NAMES[-1] == "fw_your"
    assert list(style_features("Any text at all.")) == list(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain words, punctuation dropped
        ("Hello, world.", ["Hello", "world"]),
        # inner apostrophes (straight and curly) stay inside the word; digits and dashes split
        ("Don’t stop -- it's 1999", ["Don’t", "stop", "it's"]),
        # accented letters are letters
        ("Café naïve", ["Café", "naïve"]),
        # nothing that is a word
        ("123 -- !!", []),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # three sentence ends
        ("One. Two words! Three?", ["One.", "Two words!", "Three?"]),
        # a closing quote after the full stop stays with its sentence
        ('He said "go." Then left.', ['He said "go."', "Then left."]),
        # no final punctuation: the text's end closes the sentence
        ("no end here", ["no end here"]),
        # abbreviation-free decimal numbers do not split (no whitespace after the dot)
        ("Pi is 3.14 today.", ["Pi is 3.14 today."]),
        # empty text has no sentences
        ("   ", []),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_style_features_hand_computed() -> None:
    text = "The cat sat. The dog, too, sat down!"
    f = style_features(text)
    # 2 sentences of 3 and 5 words
    assert f["sentence_length_mean"] == 4.0
    assert f["sentence_length_std"] == 1.0
    # 8 words; letters: 3+3+3+3+3+3+3+4 = 25
    assert f["word_length_mean"] == pytest.approx(25 / 8)
    # types: the, cat, sat, dog, too, down = 6 of 8
    assert f["type_token_ratio"] == pytest.approx(6 / 8)
    # hapax: cat, dog, too, down = 4 of 8
    assert f["hapax_rate"] == pytest.approx(4 / 8)
    # two commas and one exclamation mark in 8 words
    assert f["comma_rate"] == pytest.approx(25.0)
    assert f["exclamation_rate"] == pytest.approx(12.5)
    assert f["question_rate"] == 0.0
    # function words: the x2, too is not one -> 2 of 8
    assert f["function_word_rate"] == pytest.approx(2 / 8)
    assert f["fw_the"] == pytest.approx(2 / 8)
    # capitalised: The, The -> 2 of 8; uppercase letters 2 of 25
    assert f["capitalised_word_rate"] == pytest.approx(2 / 8)
    assert f["uppercase_char_rate"] == pytest.approx(2 / 25)


@pytest.mark.parametrize(
    ("text", "feature", "expected"),
    [
        # one semicolon in 4 words
        ("a b; c d", "semicolon_rate", 25.0),
        # one colon in 2 words
        ("note: this", "colon_rate", 50.0),
        # em dash, en dash, double hyphen and a spaced hyphen: 4 dashes in 6 words; a hyphen
        # inside a compound word is not a dash
        ("a—b – c -- d - well-known", "dash_rate", 100.0 * 4 / 6),
        # two double quotes and a pair of curly single quotes (3 words); the apostrophe in "it's" is not one
        ('"yes" it\'s ‘no’', "quote_rate", 100.0 * 4 / 3),
        # parentheses and brackets: 4 in 2 words
        ("(a) [b]", "parenthesis_rate", 200.0),
        # two question marks in 2 words
        ("why? why?", "question_rate", 100.0),
        # four digits per 1 word (a number is not a word)
        ("year 1999", "digit_rate", 400.0),
        # 7+ letter words: "wonderful" only
        ("a wonderful day", "long_word_rate", 1 / 3),
    ],
)
def test_punctuation_and_rates(text: str, feature: str, expected: float) -> None:
    assert style_features(text)[feature] == pytest.approx(expected)


def test_mattr_and_yules_k_known_values() -> None:
    # windows of 2 over a b a b: every window has 2 types -> 1.0
    assert mattr(["a", "b", "a", "b"], window=2) == 1.0
    # windows of 2 over a a b b: (1 + 2 + 1) / 3 / 2
    assert mattr(["a", "a", "b", "b"], window=2) == pytest.approx(4 / 6)
    # shorter than the window: plain TTR
    assert mattr(["a", "a", "b"], window=50) == pytest.approx(2 / 3)
    assert mattr([], window=5) == 0.0
    # Yule's K: all distinct -> 0; a a b b -> 1e4 * (2*4 - 4) / 16 = 2500
    assert yules_k(["a", "b", "c"]) == 0.0
    assert yules_k(["a", "a", "b", "b"]) == pytest.approx(2500.0)


def test_text_without_words_measures_zero() -> None:
    assert set(style_features("").values()) == {0.0}
    assert set(style_features("  123 ... ").values()) == {0.0}


def test_non_text_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="style_features expects a str, got int"):
        style_features(42)  # type: ignore[arg-type]


def test_features_are_finite_on_odd_text() -> None:
    for text in ["!!!", "A", "a " * 500, "Ünïcödé — “quoted” (paren); x: y?"]:
        assert all(math.isfinite(v) for v in style_features(text).values())


def test_feature_matrix_shape_and_determinism() -> None:
    texts = ["One two three.", "Four, five; six!", ""]
    m1, m2 = feature_matrix(texts), feature_matrix(texts)
    assert m1.shape == (3, len(FEATURE_NAMES))
    assert np.array_equal(m1, m2)
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))


def test_char_ngram_similarity_prefers_the_same_text() -> None:
    exemplars = ["It is a truth universally acknowledged, that a single man in possession of a good fortune."]
    sims = char_ngram_similarity(exemplars, [exemplars[0], "zzz qqq xxx vvv"])
    assert sims[0] == pytest.approx(1.0)
    assert sims[1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least one non-empty exemplar"):
        char_ngram_similarity(["  "], ["a"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # a scalar feature has its own words
        ("comma_rate", "commas per 100 words"),
        # a function word
        ("fw_the", "share of the function word 'the'"),
    ],
)
def test_describe(name: str, expected: str) -> None:
    assert describe(name) == expected


def test_describe_unknown_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown style feature 'fw_zebra'"):
        describe("fw_zebra")
