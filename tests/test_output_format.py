"""The ONE parser of the reward model's output (docs/design.md, "Reward-model output"; paper §3.1):
tables of valid and invalid completions, property-based checks that it never raises, and the
render -> parse round trip."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persrm_lib.core.output_format import (
    ParsedOutput,
    can_still_parse,
    format_score,
    parse_output,
    render_output,
    strip_think,
)
from persrm_lib.core.text import is_blank
from persrm_lib.core.verdict import preferred_side, read_verdict


def wrap(scores: str = "[7, 3]", criteria: str = "rhythm", evaluation: str = "A keeps it") -> str:
    return f"<criteria>{criteria}</criteria><eval>{evaluation}</eval><scores>{scores}</scores>"


VALID = [
    # (completion, expected scores, expected preferred)
    (wrap("[7, 3]"), (7.0, 3.0), "a"),  # plain integers, A higher
    (wrap("[2, 9]"), (2.0, 9.0), "b"),  # B higher
    (wrap("[5, 5]"), (5.0, 5.0), None),  # tie: parses, but prefers neither
    (wrap("[0, 0]"), (0.0, 0.0), None),  # tie at the lower bound
    (wrap("[10, 0]"), (10.0, 0.0), "a"),  # both bounds are inside the range
    (wrap("[7.5, 7.25]"), (7.5, 7.25), "a"),  # decimals
    (wrap("[.5, 1.]"), (0.5, 1.0), "b"),  # a leading or trailing decimal point
    (wrap("[+6, 4]"), (6.0, 4.0), "a"),  # explicit plus sign
    (wrap("[ 7 ,3 ]"), (7.0, 3.0), "a"),  # spaces inside the brackets
    (wrap("\n[7,\t3]\n"), (7.0, 3.0), "a"),  # newlines and tabs around the list
    ("  \n" + wrap() + "\n\n  ", (7.0, 3.0), "a"),  # whitespace before <criteria> and after </scores>
    (
        "<criteria>\nc\n</criteria>\n\n<eval>\ne\n</eval>\n<scores>[1, 2]</scores>",
        (1.0, 2.0),
        "b",
    ),  # newlines between sections
    ("<CRITERIA>c</Criteria><EVAL>e</eval><Scores>[3, 1]</SCORES>", (3.0, 1.0), "a"),  # tag names in any case
    ("< criteria >c</ criteria ><eval >e</eval ><scores>[3, 1]</scores>", (3.0, 1.0), "a"),  # spaces inside tags
    (wrap("[3, 1]", criteria="uses <evaluation> and [1, 2]"), (3.0, 1.0), "a"),  # look-alike text inside a section
]


@pytest.mark.parametrize(("text", "scores", "preferred"), VALID)
def test_valid_outputs(text: str, scores: tuple[float, float], preferred: str | None) -> None:
    parsed = parse_output(text)
    assert parsed.ok is True
    assert parsed.reason is None
    assert parsed.scores == scores
    assert read_verdict(text).preferred == preferred


def test_sections_are_stripped() -> None:
    parsed = parse_output("<criteria>\n  rhythm, commas \n</criteria><eval> A wins </eval><scores>[7, 3]</scores>")
    assert (parsed.criteria, parsed.evaluation) == ("rhythm, commas", "A wins")


INVALID = [
    # (completion, expected reason as a regular expression)
    ("", r"^tag <criteria> is missing$"),  # empty completion
    (wrap("[3, 1]", criteria="", evaluation="e"), r"^section <criteria> is empty$"),  # reasoning is not optional
    (wrap("[3, 1]", criteria="c", evaluation=" \n\t "), r"^section <eval> is empty$"),  # whitespace only
    (wrap("[3, 1]", criteria="", evaluation=""), r"^section <criteria> is empty$"),  # the first empty one is named
    ("<scores>[7, 3]</scores>", r"^tag <criteria> is missing$"),  # only the scores
    ("<criteria>c<eval>e</eval><scores>[7, 3]</scores>", r"^tag </criteria> is missing$"),  # closing tag missing
    ("<criteria>c</criteria><scores>[7, 3]</scores>", r"^tag <eval> is missing$"),  # a whole section missing
    ("<criteria>c</criteria><eval>e</eval>[7, 3]", r"^tag <scores> is missing$"),  # scores without their tag
    ("<criteria>c</criteria><eval>e</eval><scores>[7, 3]", r"^tag </scores> is missing$"),  # cut off at the end
    (wrap() + "<criteria>c</criteria>", r"^tag <criteria> is repeated$"),  # a section written twice
    (wrap(evaluation="e</eval><eval>f"), r"^tag <eval> is repeated$"),  # a tag repeated inside
    (
        "<criteria>c</criteria><eval>e</eval><scores>[1, 2]</scores></scores>",
        r"^tag <scores> is repeated$",
    ),  # extra close
    (
        "<eval>e</eval><criteria>c</criteria><scores>[7, 3]</scores>",
        r"^tags out of order: <eval> </eval> <criteria>",
    ),  # swapped
    ("<criteria>c<eval>e</criteria></eval><scores>[7, 3]</scores>", r"^tags out of order"),  # nested sections
    ("</criteria>c<criteria><eval>e</eval><scores>[7, 3]</scores>", r"^tags out of order"),  # close before open
    (wrap("[7]"), r"^expected exactly two scores, got 1$"),  # one number
    (wrap("[7, 3, 1]"), r"^expected exactly two scores, got 3$"),  # three numbers
    (wrap("[7, 3,]"), r"^expected exactly two scores, got 3$"),  # trailing comma
    (wrap("[]"), r"^expected exactly two scores, got 0$"),  # no numbers
    (wrap("7, 3"), r"^scores must be written as \[s_a, s_b\]"),  # no brackets
    (wrap("(7, 3)"), r"^scores must be written as \[s_a, s_b\]"),  # parentheses
    (wrap("[7; 3]"), r"^expected exactly two scores, got 1$"),  # wrong separator
    (wrap("[seven, 3]"), r"^score 'seven' is not a number$"),  # a word
    (wrap("[7/10, 3/10]"), r"^score '7/10' is not a number$"),  # a fraction
    (wrap("[1e1, 3]"), r"^score '1e1' is not a number$"),  # exponent notation
    (wrap("[nan, 3]"), r"^score 'nan' is not a number$"),  # NaN
    (wrap("[NaN, 3]"), r"^score 'NaN' is not a number$"),  # NaN, other case
    (wrap("[inf, 3]"), r"^score 'inf' is not a number$"),  # infinity
    (wrap("[7, -inf]"), r"^score '-inf' is not a number$"),  # negative infinity
    (wrap("[\u0663, 1]"), r"^score '\u0663' is not a number$"),  # a non-ASCII digit (Arabic-Indic three)
    (wrap("[10.5, 3]"), r"^score 10.5 is outside \[0, 10\]$"),  # above the range
    (wrap("[7, -1]"), r"^score -1 is outside \[0, 10\]$"),  # below the range
    (wrap("[7, 100]"), r"^score 100 is outside \[0, 10\]$"),  # a 0-100 scale
    (wrap("[" + "9" * 400 + ", 1]"), r"^score 9{20} is outside"),  # overflows to infinity; the reason stays short
    ("Sure! " + wrap(), r"^text before <criteria>$"),  # chatter before the first tag
    ("<criteria>c</criteria> so <eval>e</eval><scores>[7, 3]</scores>", r"^text between sections, before <eval>$"),
    ("<criteria>c</criteria><eval>e</eval> ok <scores>[7, 3]</scores>", r"^text between sections, before <scores>$"),
    (wrap() + " A wins.", r"^text after </scores>$"),  # chatter after the scores
    (wrap() + "<|im_end|>", r"^text after </scores>$"),  # an undecoded special token after the scores
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_outputs(text: str, reason: str) -> None:
    parsed = parse_output(text)
    assert parsed.ok is False
    assert parsed.scores is None
    assert read_verdict(text).preferred is None
    assert parsed.reason is not None
    assert re.search(reason, parsed.reason), parsed.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "completion is a NoneType, not text"),  # no completion at all
        (7, "completion is a int, not text"),  # a number instead of text
        ([{"role": "assistant", "content": wrap()}], "completion is a list, not text"),  # unwrapped chat message
    ],
)
def test_non_text_is_a_violation(value: object, reason: str) -> None:
    parsed = parse_output(value)
    assert (parsed.ok, parsed.reason) == (False, reason)


OUTCOMES = [
    # (completion, label, reward)
    (wrap("[7, 3]"), "a", 1),  # labelled response scored higher
    (wrap("[7, 3]"), "b", 0),  # parsed, wrong preference
    (wrap("[3, 7]"), "b", 1),  # B labelled and preferred
    (wrap("[5, 5]"), "a", 0),  # ties are wrong
    (wrap("[5, 5]"), "b", 0),  # ties are wrong for either label
    (wrap("[11, 3]"), "a", -1),  # format violation beats a correct-looking preference
    ("no tags at all", "b", -1),  # format violation
]


@pytest.mark.parametrize(("text", "label", "reward"), OUTCOMES)
def test_outcome(text: str, label: str, reward: int) -> None:
    assert read_verdict(text).outcome(label) == reward


@pytest.mark.parametrize("label", ["A", "", "c", None])  # wrong case, empty, unknown, missing
def test_outcome_rejects_bad_label(label: object) -> None:
    with pytest.raises(ValueError, match="label must be 'a' or 'b'"):
        read_verdict(wrap()).outcome(label)


@pytest.mark.parametrize(("value", "text"), [(7, "7"), (7.0, "7"), (2.5, "2.5"), (0, "0"), (10, "10"), (3.25, "3.2")])
def test_format_score(value: float, text: str) -> None:
    assert format_score(value) == text


@pytest.mark.parametrize("scores", [(11, 3), (7, -0.5)])  # above and below the range
def test_render_refuses_out_of_range(scores: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=r"is outside \[0, 10\]"):
        render_output("c", "e", scores)


# ---- property-based ------------------------------------------------------------------------------

FRAGMENTS = [
    "<criteria>", "</criteria>", "<eval>", "</eval>", "<scores>", "</scores>", "<CRITERIA>", "< eval >", "</ scores>",
    "[", "]", ",", "7", "3.5", "-1", "nan", "inf", "1e9", " ", "\n", "text", ".", "+", "<", ">", "/", "\x00", "\u0663",
]  # fmt: skip


def _check_invariants(parsed: ParsedOutput) -> None:
    assert parsed.ok == (parsed.reason is None)
    if parsed.ok:
        assert parsed.scores is not None and len(parsed.scores) == 2
        assert all(math.isfinite(s) and 0 <= s <= 10 for s in parsed.scores)
        assert isinstance(parsed.criteria, str) and isinstance(parsed.evaluation, str)
    else:
        assert parsed.scores is None and preferred_side(parsed.scores) is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_parse_never_raises_on_arbitrary_text(text: str) -> None:
    _check_invariants(parse_output(text))


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_parse_never_raises_on_tag_fragments(parts: list[str]) -> None:
    _check_invariants(parse_output("".join(parts)))


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=8), st.lists(st.sampled_from(FRAGMENTS), max_size=8))
def test_parse_never_raises_with_fragments_around_valid_output(before: list[str], after: list[str]) -> None:
    text = "".join(before) + wrap() + "".join(after)
    parsed = parse_output(text)
    _check_invariants(parsed)
    if not "".join(before + after).strip():
        assert parsed.ok  # only whitespace around a valid output keeps it valid


# Section text without anything that reads as one of our tags.
section_text = st.text(
    alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=80
).filter(lambda text: not is_blank(text))  # a section must hold visible text (an empty one is a violation)
score = st.integers(min_value=0, max_value=100).map(lambda k: k / 10)  # 0.0 .. 10.0 in steps of 0.1


@settings(max_examples=300, deadline=None, database=None)
@given(section_text, section_text, score, score)
def test_render_parse_round_trip(criteria: str, evaluation: str, s_a: float, s_b: float) -> None:
    text = render_output(criteria, evaluation, (s_a, s_b))
    parsed = parse_output(text)
    assert parsed.ok, parsed.reason
    assert parsed.criteria == criteria.strip()
    assert parsed.evaluation == evaluation.strip()
    assert parsed.scores == (s_a, s_b)
    assert read_verdict(text).preferred == ("a" if s_a > s_b else "b" if s_b > s_a else None)


# --- a reasoning model's think block (issue 13, item 5) -----------------------------------------------

THINK_CASES = [
    # (completion, expected rest, stripped)
    ("<think>A's rhythm fits.</think>" + wrap(), wrap(), True),  # the block right before <criteria>
    ("\n <think>\nmulti\nline\n</think>\n\n" + wrap(), "\n\n" + wrap(), True),  # whitespace around, newlines inside
    ("<think></think>" + wrap(), wrap(), True),  # an empty block (Qwen3 with thinking off)
    ("<think>a</think><think>b</think>" + wrap(), "<think>b</think>" + wrap(), True),  # only ONE block
    ("<think>x <criteria> y</think>" + wrap(), wrap(), True),  # tags inside the thought are removed with it
    (wrap(), wrap(), False),  # no block: unchanged
    ("Sure! <think>a</think>" + wrap(), "Sure! <think>a</think>" + wrap(), False),  # text before it
    ("<think>never closed " + wrap(), "<think>never closed " + wrap(), False),  # unclosed: left in place
    ("<THINK>a</THINK>" + wrap(), "<THINK>a</THINK>" + wrap(), False),  # the models write it lower-case
    (wrap() + "<think>late</think>", wrap() + "<think>late</think>", False),  # after the verdict: not a preamble
]


@pytest.mark.parametrize(("text", "rest", "stripped"), THINK_CASES)
def test_strip_think_removes_one_leading_block(text: str, rest: str, stripped: bool) -> None:
    assert strip_think(text) == (rest, stripped)


def test_a_think_block_is_a_violation_unless_stripped() -> None:
    text = "<think>B drifts.</think>\n" + wrap("[8, 2]")
    # the strict parser (the trained model, the GRPO reward) is unchanged: -1
    assert parse_output(text).reason == "text before <criteria>"
    assert read_verdict(text).outcome("a") == -1
    rest, stripped = strip_think(text)
    assert stripped and parse_output(rest).scores == (8.0, 2.0) and read_verdict(rest).outcome("a") == 1
    # a second block stays a violation after one strip
    assert parse_output(strip_think("<think>a</think><think>b</think>" + wrap())[0]).reason == "text before <criteria>"


def test_strip_think_leaves_non_text_alone() -> None:
    assert strip_think(None) == (None, False)
    assert strip_think(["<think>a</think>"]) == (["<think>a</think>"], False)


# ---- can_still_parse: where generation may stop without changing the verdict ----------------------

POINTWISE_VALID = [
    "<criteria>c</criteria><eval>e</eval><score>7</score>",
    " \n< CRITERIA\t>c</criteria><eval>e</eval><score>7</score>",
]


@pytest.mark.parametrize("text", [text for text, _, _ in VALID] + POINTWISE_VALID)
def test_every_beginning_of_a_valid_output_can_still_parse(text: str) -> None:
    assert parse_output(text).ok or parse_output(text, mode="pointwise").ok
    assert all(can_still_parse(text[:end]) for end in range(len(text) + 1))


@pytest.mark.parametrize(
    "text",
    [
        "The response",
        "x",
        "<eval>e</eval>",
        "</criteria>",
        "<cx",
        "<criteriaa>",
        "<think>",
        "[7, 3]",
        "\u200b<criteria>",
    ],
)
def test_a_beginning_that_cannot_parse_is_named(text: str) -> None:
    assert not can_still_parse(text)
    for rest in [wrap(), POINTWISE_VALID[0], "c</criteria><eval>e</eval><scores>[7, 3]</scores>", ">" + wrap()]:
        assert not parse_output(text + rest).ok and not parse_output(text + rest, mode="pointwise").ok


def test_a_half_written_character_is_not_a_reason_to_stop() -> None:
    # U+FFFD is what a multi-byte character decodes to while only some of its tokens are written
    assert can_still_parse("\ufffd") and can_still_parse(" <crit\ufffd")
    assert not can_still_parse("a\ufffd")


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=6), st.sampled_from([wrap(), POINTWISE_VALID[0], "", ">"]))
def test_cannot_parse_means_no_continuation_parses(parts: list[str], rest: str) -> None:
    head = "".join(parts)
    if not can_still_parse(head):
        assert not parse_output(head + rest).ok and not parse_output(head + rest, mode="pointwise").ok
