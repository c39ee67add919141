"""The ONE prompt builder: exemplar truncation 1..k, the message layout, and errors on bad pairs."""

from __future__ import annotations

import re

import pytest

from persrm_lib.core.prompt import SYSTEM_PROMPT, build_messages, build_prompt_text, build_user_message


def make_pair(n_exemplars: int = 3) -> dict:
    return {
        "id": "p1",
        "query": "  Write about the harvest. ",
        "exemplars": [f"Exemplar text number {i}." for i in range(1, n_exemplars + 1)],
        "response_a": "The chosen text.",
        "response_b": "The rejected text.",
        "label": "a",
    }


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exemplar_truncation_keeps_the_first_k(k: int) -> None:
    message = build_user_message(make_pair(3), n_exemplars=k)
    numbers = [int(n) for n in re.findall(r"^Exemplar (\d+):$", message, flags=re.MULTILINE)]
    assert numbers == list(range(1, k + 1))
    for i in range(1, 4):
        assert (f"Exemplar text number {i}." in message) == (i <= k)


def test_all_exemplars_when_n_is_none() -> None:
    message = build_user_message(make_pair(3))
    assert re.findall(r"^Exemplar (\d+):$", message, flags=re.MULTILINE) == ["1", "2", "3"]


def test_user_message_layout() -> None:
    message = build_user_message(make_pair(1), n_exemplars=1)
    assert message == (
        "Writing exemplars by the author:\n\n"
        "Exemplar 1:\nExemplar text number 1.\n\n"
        "Query:\nWrite about the harvest.\n\n"
        "Response A:\nThe chosen text.\n\n"
        "Response B:\nThe rejected text."
    )


def test_messages_are_system_then_user_and_carry_no_label() -> None:
    pair = make_pair(2)
    messages = build_messages(pair, n_exemplars=2)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    # The label must not leak into the prompt (DESIGN.md hazards).
    assert "label" not in messages[1]["content"].lower()


def test_system_prompt_names_the_three_sections() -> None:
    for tag in ("<criteria>", "</criteria>", "<eval>", "</eval>", "<scores>", "</scores>"):
        assert tag in SYSTEM_PROMPT


class _Template:
    """Stands in for a tokenizer: records what apply_chat_template received."""

    def apply_chat_template(self, messages: list, tokenize: bool, add_generation_prompt: bool) -> str:
        assert (tokenize, add_generation_prompt) == (False, True)
        return "|".join(f"{m['role']}:{m['content'][:8]}" for m in messages) + "|assistant:"


def test_prompt_text_goes_through_the_chat_template() -> None:
    assert build_prompt_text(_Template(), make_pair(1), 1) == "system:You are |user:Writing |assistant:"


BAD_PAIRS = [
    # (change to a valid pair, error type, message)
    ({"drop": "query"}, KeyError, r"pair 'p1' lacks field\(s\): query"),  # no query
    ({"drop": "exemplars"}, KeyError, r"lacks field\(s\): exemplars"),  # no exemplars
    ({"drop": "response_b"}, KeyError, r"lacks field\(s\): response_b"),  # no rejected/second response
    ({"set": ("exemplars", [])}, ValueError, r"pair 'p1': exemplars must be a non-empty list"),  # empty list
    ({"set": ("exemplars", "one text")}, ValueError, r"exemplars must be a non-empty list of texts"),  # a bare string
    ({"set": ("exemplars", None)}, ValueError, r"exemplars must be a non-empty list of texts"),  # None
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_PAIRS)
def test_bad_pairs_raise(change: dict, error: type[Exception], message: str) -> None:
    pair = make_pair(2)
    if "drop" in change:
        del pair[change["drop"]]
    else:
        key, value = change["set"]
        pair[key] = value
    with pytest.raises(error, match=message):
        build_messages(pair, n_exemplars=1)


def test_missing_fields_are_all_named() -> None:
    with pytest.raises(KeyError, match=r"lacks field\(s\): query, response_a"):
        build_messages({"id": "x", "exemplars": ["e"], "response_b": "b"})


@pytest.mark.parametrize(
    ("n", "message"),
    [
        (0, r"n_exemplars must be at least 1, got 0"),  # zero exemplars requested
        (-2, r"n_exemplars must be at least 1, got -2"),  # negative
        (4, r"pair 'p1' has 3 exemplars, 4 requested"),  # more than the pair holds
    ],
)
def test_n_exemplars_out_of_range(n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_messages(make_pair(3), n_exemplars=n)
