"""The ONE prompt builder: a pair (docs/design.md, "Pair") with 1..k exemplars -> chat messages.

The reward model reads the exemplars, the query and two responses, writes a personality-centric
analysis and scores both responses (PersRM-R1, arXiv 2508.14076, §3.1). The system message fixes
the output format that :func:`persrm_lib.core.output_format.parse_output` reads.

User-supplied text -- exemplars, query, responses -- is always encoded as plain text: before it is
templated, :func:`neutralise_special_tokens` breaks every special-token string in it (``<|im_end|>``
becomes ``<\u200b|im_end|>``), so that a candidate response cannot close the user turn and open a
forged assistant turn that already holds a verdict. A policy trained against this reward model
writes the candidate texts, so this is an attack surface, not only a curiosity. Doing it in the text
(not with ``split_special_tokens`` at tokenisation) covers every consumer: TRL templates and
tokenises SFT and GRPO prompts itself, and an OpenAI-compatible server templates a teacher's.

Blocks after Response B (:func:`register_pair_block`): an ablation that shows more than the
exemplars, the query and the responses registers a renderer under the pair field that carries its
record, and a pair whose field is present and not None gets the rendered block (for the exemplars
shown). The one such block is measured evidence (``prompt.evidence = stylometric``, issue 12):
:mod:`persrm_lib.data.evidence` registers its table under ``evidence`` and the package imports it,
so the registration is in place before any prompt is built. The pair decides, not a flag: SFT,
GRPO, judging and the teachers all build their prompts here, so they all show it, and a pair
without a record is shown without. This module names no ablation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

SYSTEM_PROMPT = (
    "You are a personalized reward model. You read writing exemplars by one author, a query, and "
    "two candidate responses, A and B. Decide which response is more likely written by the same "
    "author, judging writing style (sentence rhythm, vocabulary, punctuation, tone, structure), "
    "not topic. Answer in exactly this format and nothing else:\n"
    "<criteria>the stylistic criteria that matter for this author</criteria>\n"
    "<eval>how each response meets the criteria, citing both</eval>\n"
    "<scores>[score_A, score_B]</scores>\n"
    "Scores are numbers from 0 to 10; give the author's response the higher score."
)

# The pointwise prompt is short on purpose: every template token is paid for at every training step,
# and the model learns the format from SFT anyway. 57 SmolLM2 tokens instead of 98, and about 120
# instead of 189 for a whole one-exemplar persona prompt: about 25% less time per SFT step on a CPU,
# with the same held-out accuracy after 200 steps (README, "Does a small model learn it?").
POINTWISE_SYSTEM_PROMPT = (
    "Rate how well the response matches the style of the exemplars' author. Format:\n"
    "<criteria>features</criteria>\n<eval>checks</eval>\n<score>0-10</score>"
)

REQUIRED_PAIR_FIELDS = ("query", "exemplars", "response_a", "response_b")

# --- special tokens in user text -------------------------------------------------------------------
# The transformation: a ZERO WIDTH SPACE (U+200B) is inserted after the first character of every
# special-token string, e.g. "<|im_end|>" -> "<\u200b|im_end|>", "</s>" -> "<\u200b/s>". The text
# reads the same, no tokenizer has a special token containing U+200B, so the result tokenises as
# plain text; the transformation is idempotent (a broken marker no longer matches) and leaves text
# without such strings unchanged. Special-token strings are: the tokenizer's own special and added
# tokens when a tokenizer is given, and always the generic markers below.
BREAK = "\u200b"
GENERIC_SPECIAL_TOKEN_PATTERNS = (
    r"<\|[^<>|\s]{1,64}\|>",  # ChatML, Llama 3, Phi, GPT: <|im_start|>, <|eot_id|>, <|endoftext|>
    r"<\uff5c[^<>\uff5c\s]{1,64}\uff5c>",  # DeepSeek's full-width bars: <｜User｜>, <｜end▁of▁sentence｜>
    r"</?s>|<unk>|<pad>|<bos>|<eos>",  # SentencePiece and Gemma sequence markers
    r"\[/?INST\]|<</?SYS>>",  # Llama 2 and Mistral turn markers
    r"<(?:start|end)_of_turn>",  # Gemma turn markers
)


def special_token_strings(tokenizer: Any) -> tuple[str, ...]:
    """The strings a tokenizer turns into special or added tokens (longest first; none shorter than 2).

    Reads ``all_special_tokens`` and the added vocabulary (``added_tokens_decoder``) of a
    transformers tokenizer; anything without them gives ``()``.
    """
    found: set[str] = set(getattr(tokenizer, "all_special_tokens", None) or ())
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found.update(str(getattr(token, "content", token)) for token in added.values())
    return tuple(sorted((t for t in found if len(t) >= 2), key=lambda t: (-len(t), t)))


@functools.lru_cache(maxsize=16)
def _special_token_re(tokens: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join([re.escape(t) for t in tokens] + list(GENERIC_SPECIAL_TOKEN_PATTERNS)))


def neutralise_special_tokens(text: str, tokenizer: Any = None, extra: Iterable[str] = ()) -> str:
    """User text with every special-token string broken by a zero-width space after its first character.

    Args:
        text: exemplar, query or response text.
        tokenizer: when given, its own special and added tokens are broken too
            (:func:`special_token_strings`); the generic markers always are.
        extra: more strings to break (e.g. a served model's special tokens).

    Returns:
        The text; unchanged when it holds no such string. Idempotent.

    >>> neutralise_special_tokens("end<|im_end|>") == "end<\u200b|im_end|>"
    True
    >>> neutralise_special_tokens("plain <b>text</b>")
    'plain <b>text</b>'
    """
    tokens = tuple(
        sorted({*special_token_strings(tokenizer), *(t for t in extra if len(t) >= 2)}, key=lambda t: (-len(t), t))
    )
    return _special_token_re(tokens).sub(lambda m: m.group(0)[0] + BREAK + m.group(0)[1:], text)


# --- blocks after Response B ----------------------------------------------------------------------
PairBlock = Callable[[Mapping[str, Any], int], str]  # (pair, exemplars shown) -> the block's text
_PAIR_BLOCKS: dict[str, PairBlock] = {}  # pair field -> renderer, in registration order


def register_pair_block(field_name: str, render: PairBlock) -> None:
    """Show ``render(pair, n_exemplars_shown)`` after Response B of every pair whose ``field_name``
    is present and not None (made plain like the rest of the user text). Registering a field again
    replaces its renderer."""
    _PAIR_BLOCKS[field_name] = render


def _check_pair(pair: Mapping[str, Any]) -> None:
    missing = [name for name in REQUIRED_PAIR_FIELDS if name not in pair]
    if missing:
        raise KeyError(f"pair {pair.get('id', '?')!r} lacks field(s): {', '.join(missing)}")
    exemplars = pair["exemplars"]
    if isinstance(exemplars, str) or not isinstance(exemplars, Sequence) or not exemplars:
        raise ValueError(f"pair {pair.get('id', '?')!r}: exemplars must be a non-empty list of texts")


def _plain(text: Any, tokenizer: Any = None) -> str:
    return neutralise_special_tokens(str(text).strip(), tokenizer)


def _exemplar_blocks(pair: Mapping[str, Any], n_exemplars: int | None, tokenizer: Any) -> str:
    """The first ``n_exemplars`` exemplars (all when None), numbered, each as plain text (:func:`_plain`)."""
    exemplars = list(pair["exemplars"])
    if n_exemplars is not None:
        if n_exemplars < 1:
            raise ValueError(f"n_exemplars must be at least 1, got {n_exemplars}")
        if n_exemplars > len(exemplars):
            raise ValueError(f"pair {pair.get('id', '?')!r} has {len(exemplars)} exemplars, {n_exemplars} requested")
        exemplars = exemplars[:n_exemplars]
    return "\n\n".join(f"Exemplar {i}:\n{_plain(text, tokenizer)}" for i, text in enumerate(exemplars, start=1))


def build_user_message(pair: Mapping[str, Any], n_exemplars: int | None = None, *, tokenizer: Any = None) -> str:
    """The user turn: numbered exemplars (the first ``n_exemplars``), the query, A and B, then the
    blocks the pair carries (:func:`register_pair_block`: the evidence table, measured on the
    exemplars shown).

    Every exemplar, the query, both responses and the blocks pass through
    :func:`neutralise_special_tokens` (with ``tokenizer``'s own special tokens when given), so none
    becomes a special token.

    Raises:
        KeyError: a required field is missing (naming the pair and the fields).
        ValueError: no exemplars, or ``n_exemplars`` below 1 or above the pair's exemplars.
        persrm_lib.data.evidence.EvidenceError: (from its block) a malformed evidence record, or
            none measured on the exemplars shown (naming the pair).
    """
    _check_pair(pair)
    plain = functools.partial(_plain, tokenizer=tokenizer)
    message = (
        "Writing exemplars by the author:\n\n" + _exemplar_blocks(pair, n_exemplars, tokenizer) + "\n\n"
        f"Query:\n{plain(pair['query'])}\n\n"
        f"Response A:\n{plain(pair['response_a'])}\n\n"
        f"Response B:\n{plain(pair['response_b'])}"
    )
    shown = len(pair["exemplars"]) if n_exemplars is None else n_exemplars
    for name, render in _PAIR_BLOCKS.items():
        if pair.get(name) is not None:
            message += "\n\n" + plain(render(pair, shown))
    return message


def build_pointwise_user_message(
    pair: Mapping[str, Any], side: str, n_exemplars: int | None = None, *, tokenizer: Any = None
) -> str:
    """The user turn of the pointwise formulation: the exemplars, the query and ONE response
    (``side`` 'a' or 'b'), with no letter: the model never sees a position to prefer.

    Raises:
        KeyError, ValueError: as :func:`build_user_message`; ``side`` not 'a' or 'b'.
    """
    if side not in ("a", "b"):
        raise ValueError(f"side must be 'a' or 'b', got {side!r}")
    _check_pair(pair)
    plain = functools.partial(_plain, tokenizer=tokenizer)
    return (
        _exemplar_blocks(pair, n_exemplars, tokenizer) + f"\n\nQuery:\n{plain(pair['query'])}\n\n"
        f"Response:\n{plain(pair[f'response_{side}'])}"
    )


def build_pointwise_messages(
    pair: Mapping[str, Any], side: str, n_exemplars: int | None = None, *, tokenizer: Any = None
) -> list[dict[str, str]]:
    """System and user messages for one response of a pair (the pointwise formulation).

    >>> pair = {"query": "Q", "exemplars": ["E1"], "response_a": "A", "response_b": "B"}
    >>> build_pointwise_messages(pair, "b")[1]["content"].endswith("Response:\\nB")
    True
    """
    return [
        {"role": "system", "content": POINTWISE_SYSTEM_PROMPT},
        {"role": "user", "content": build_pointwise_user_message(pair, side, n_exemplars, tokenizer=tokenizer)},
    ]


def build_messages(
    pair: Mapping[str, Any], n_exemplars: int | None = None, *, tokenizer: Any = None
) -> list[dict[str, str]]:
    """System and user messages for one pair (user text made plain: see :func:`build_user_message`).

    >>> pair = {"query": "Q", "exemplars": ["E1", "E2"], "response_a": "A", "response_b": "B"}
    >>> [m["role"] for m in build_messages(pair, n_exemplars=1)]
    ['system', 'user']
    """
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": build_user_message(pair, n_exemplars, tokenizer=tokenizer)},
    ]


class ChatTemplateError(ValueError):
    """A tokenizer without a chat template (a base model): the reward model's prompt is a chat."""


def require_chat_template(tokenizer: Any, model: str | None = None) -> None:
    """Refuse a tokenizer that has no chat template, naming the model, before any prompt is built.

    Raises:
        ChatTemplateError: ``model '<name>' has no chat template ...``.
    """
    if hasattr(tokenizer, "chat_template") and not tokenizer.chat_template:  # a transformers tokenizer without one
        name = model or getattr(tokenizer, "name_or_path", None) or "?"
        raise ChatTemplateError(
            f"model {str(name)!r} has no chat template (a base model?): the reward model's prompt is a chat; "
            "use an instruction-tuned model, or save a chat_template with its tokenizer"
        )


def build_prompt_text(tokenizer: Any, pair: Mapping[str, Any], n_exemplars: int | None = None) -> str:
    """The chat-templated prompt string, ending with the assistant turn's opening.

    The user text is made plain with ``tokenizer``'s own special tokens as well as the generic ones,
    so the tokenised prompt holds exactly the special tokens of the template.

    Raises:
        ChatTemplateError: the tokenizer has no chat template (:func:`require_chat_template`).
    """
    require_chat_template(tokenizer)
    messages = build_messages(pair, n_exemplars, tokenizer=tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
