"""The ONE prompt builder: a pair (DESIGN.md's pair contract) with 1..k exemplars -> chat messages.

The reward model reads the exemplars, the query and two responses, writes a personality-centric
analysis and scores both responses (PersRM-R1, arXiv 2508.14076, §3.1). The system message fixes
the output format that :func:`persrm_lib.core.output_format.parse_output` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

REQUIRED_PAIR_FIELDS = ("query", "exemplars", "response_a", "response_b")


def _check_pair(pair: Mapping[str, Any]) -> None:
    missing = [name for name in REQUIRED_PAIR_FIELDS if name not in pair]
    if missing:
        raise KeyError(f"pair {pair.get('id', '?')!r} lacks field(s): {', '.join(missing)}")
    exemplars = pair["exemplars"]
    if isinstance(exemplars, str) or not isinstance(exemplars, Sequence) or not exemplars:
        raise ValueError(f"pair {pair.get('id', '?')!r}: exemplars must be a non-empty list of texts")


def build_user_message(pair: Mapping[str, Any], n_exemplars: int | None = None) -> str:
    """The user turn: numbered exemplars (the first ``n_exemplars``), the query, A and B."""
    _check_pair(pair)
    exemplars = list(pair["exemplars"])
    if n_exemplars is not None:
        if n_exemplars < 1:
            raise ValueError(f"n_exemplars must be at least 1, got {n_exemplars}")
        if n_exemplars > len(exemplars):
            raise ValueError(f"pair {pair.get('id', '?')!r} has {len(exemplars)} exemplars, {n_exemplars} requested")
        exemplars = exemplars[:n_exemplars]
    blocks = [f"Exemplar {i}:\n{text.strip()}" for i, text in enumerate(exemplars, start=1)]
    return (
        "Writing exemplars by the author:\n\n" + "\n\n".join(blocks) + "\n\n"
        f"Query:\n{str(pair['query']).strip()}\n\n"
        f"Response A:\n{str(pair['response_a']).strip()}\n\n"
        f"Response B:\n{str(pair['response_b']).strip()}"
    )


def build_messages(pair: Mapping[str, Any], n_exemplars: int | None = None) -> list[dict[str, str]]:
    """System and user messages for one pair.

    >>> pair = {"query": "Q", "exemplars": ["E1", "E2"], "response_a": "A", "response_b": "B"}
    >>> [m["role"] for m in build_messages(pair, n_exemplars=1)]
    ['system', 'user']
    """
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": build_user_message(pair, n_exemplars)},
    ]


def build_prompt_text(tokenizer: Any, pair: Mapping[str, Any], n_exemplars: int | None = None) -> str:
    """The chat-templated prompt string, ending with the assistant turn's opening."""
    return tokenizer.apply_chat_template(build_messages(pair, n_exemplars), tokenize=False, add_generation_prompt=True)
