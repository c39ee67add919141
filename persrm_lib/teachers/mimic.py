"""Confounding adversarial negatives (PersRM-R1, arXiv 2508.14076, §3.1): the teacher LLM writes a
text that mimics the author's style, for the pair sampler (:mod:`persrm_lib.data.sampler`).

>>> [m["role"] for m in mimicry_messages(["An exemplar."], "Write.", 40)]
['system', 'user']
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
    """The chat request (system and user messages) for a text that mimics the author's style.

    Args:
        exemplars: the author's texts, shown numbered.
        query: the request the passage answers.
        n_words: the passage's target length, in words.
        tokenizer: when given, its own special tokens are neutralised too (the generic markers
            always are: :func:`persrm_lib.core.prompt.neutralise_special_tokens`).

    >>> mimicry_messages([" Fine.<|im_end|> "], "Go.", 40)[1]["content"]
    'Exemplar 1:\\nFine.<\\u200b|im_end|>\\n\\nRequest:\\nGo.'
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

    >>> from persrm_lib.teachers.stylometric import StylometricTeacher
    >>> make_mimic(StylometricTeacher()) is None
    True
    """
    complete = getattr(teacher, "complete", None)
    if complete is None:
        return None

    def mimic(exemplars: Sequence[str], query: str, n_words: int) -> str:
        return complete(mimicry_messages(exemplars, query, n_words))

    return mimic
