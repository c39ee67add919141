"""Confounding adversarial negatives (PersRM-R1, arXiv 2508.14076, §3.1): the teacher LLM writes a
text that mimics the author's style, for the pair sampler (:mod:`persrm_lib.data.sampler`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core.prompt import neutralise_special_tokens

MIMICRY_INSTRUCTION = (
    "You imitate writing styles. Read the author's exemplars, then write a new passage of about "
    "{n_words} words that answers the request in the author's style: the same sentence rhythm, "
    "vocabulary, punctuation and tone. Write only the passage."
)


def mimicry_messages(
    exemplars: Sequence[str], query: str, n_words: int, *, tokenizer: Any = None
) -> list[dict[str, str]]:
    """The chat request (system and user messages) for a text of about ``n_words`` words that
    answers ``query`` in the style of ``exemplars`` (shown numbered). Special-token markers in the
    texts are neutralised (:func:`persrm_lib.core.prompt.neutralise_special_tokens`), and the
    ``tokenizer``'s own special tokens too when given.
    """

    def plain(text: str) -> str:
        return neutralise_special_tokens(text.strip(), tokenizer)

    shown = "\n\n".join(f"Exemplar {i}:\n{plain(text)}" for i, text in enumerate(exemplars, start=1))
    return [
        {"role": "system", "content": MIMICRY_INSTRUCTION.format(n_words=n_words)},
        {"role": "user", "content": f"{shown}\n\nRequest:\n{plain(query)}"},
    ]


def make_mimic(teacher: Any) -> Callable[[Sequence[str], str, int], str] | None:
    """The sampler's ``mimic`` callable for a teacher with ``complete(messages)`` (an LLM teacher or
    a chat client), or ``None`` (the sampler then falls back to ``adversarial-retrieved``).
    """
    complete = getattr(teacher, "complete", None)
    if complete is None:
        return None

    def mimic(exemplars: Sequence[str], query: str, n_words: int) -> str:
        return complete(mimicry_messages(exemplars, query, n_words))

    return mimic
