"""The model's context length, and the check that a prompt fits in it before anything is generated
(transformers only logs a line for a prompt that is too long). Tokens are counted as
:func:`persrm_lib.models.generation.generate` feeds them: the templated text, no special tokens added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

UNSET_MAX_LENGTH = 10**29  # transformers writes int(1e30) into model_max_length when it is not known
_CONFIG_LENGTH_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
MAX_NAMED = 5  # ids named in one error message


@dataclass(frozen=True)
class PromptBudget:
    """The tokens a prompt may take: ``context - reserved``."""

    context: int  # tokens the model reads at most (prompt and generation together)
    reserved: int  # tokens kept for the generation (max_new_tokens)
    source: str  # where ``context`` came from

    @property
    def limit(self) -> int:
        """The largest prompt, in tokens."""
        return self.context - self.reserved

    def describe(self) -> str:
        """``3840 tokens (context 4096 from <source>, minus 256 for generation)``."""
        return f"{self.limit} tokens (context {self.context} from {self.source}, minus {self.reserved} for generation)"


@dataclass(frozen=True)
class TooLong:
    """A prompt over its budget: the pair's id and the prompt's length in tokens."""

    id: Any
    tokens: int


class PromptTooLongError(ValueError):
    """Prompts that do not fit the model's context; the message names the first one and its tokens.
    ``kind`` is what the ids name: ``pair`` (a pair id) or ``prompt`` (a position in a batch)."""

    def __init__(self, too_long: Sequence[TooLong], budget: PromptBudget, kind: str = "pair") -> None:
        self.too_long, self.budget = list(too_long), budget
        first = self.too_long[0]
        message = f"{kind} {first.id!r}: the prompt is {first.tokens} tokens, over the {budget.describe()}"
        if len(self.too_long) > 1:
            others = ", ".join(f"{t.id!r} ({t.tokens})" for t in self.too_long[1:MAX_NAMED])
            more = ", ..." if len(self.too_long) > MAX_NAMED else ""
            message += f"; {len(self.too_long) - 1} more {kind}(s) too long: {others}{more}"
        super().__init__(message)


def model_context(model: Any = None, tokenizer: Any = None, max_length: int | None = None) -> tuple[int, str]:
    """The most tokens the model reads, and where that number comes from: the smallest of
    ``tokenizer.model_max_length`` (when set), the model config's ``max_position_embeddings`` (or
    ``n_positions``, ...; a PEFT model's is its base model's) and ``max_length`` (a configured cap).
    ``ValueError`` when none of them is known.
    """
    found: list[tuple[int, str]] = []
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < UNSET_MAX_LENGTH:
        found.append((limit, "tokenizer.model_max_length"))
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config  # multimodal configs keep it there
    for name in _CONFIG_LENGTH_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            found.append((value, f"config.{name}"))
            break
    if max_length is not None:
        found.append((int(max_length), "max_length"))
    if not found:
        raise ValueError(
            "the model's context length is unknown: neither tokenizer.model_max_length nor "
            "config.max_position_embeddings is set; pass max_length"
        )
    return min(found, key=lambda item: item[0])


def prompt_budget(
    model: Any = None,
    tokenizer: Any = None,
    *,
    reserved: int,
    max_length: int | None = None,
) -> PromptBudget:
    """The budget of one prompt: :func:`model_context` minus ``reserved`` tokens (``ValueError``: the
    context is unknown, ``reserved`` is negative, or nothing is left for a prompt)."""
    if reserved < 0:
        raise ValueError(f"reserved tokens must be at least 0, got {reserved}")
    context, source = model_context(model, tokenizer, max_length)
    if context <= reserved:
        raise ValueError(f"no room for a prompt: context {context} from {source}, {reserved} reserved for generation")
    return PromptBudget(context, reserved, source)


def known_budget(
    model: Any = None, tokenizer: Any = None, *, reserved: int, max_length: int | None = None
) -> PromptBudget | None:
    """:func:`prompt_budget` even when nothing is left (every prompt too long); None: context unknown."""
    try:
        context, source = model_context(model, tokenizer, max_length)
    except ValueError:
        return None
    return PromptBudget(context, reserved, source)


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Tokens of each text as :func:`persrm_lib.models.generation.generate` reads it (none added)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def find_too_long(
    tokenizer: Any,
    prompts: Sequence[str],
    ids: Sequence[Any],
    budget: PromptBudget | int,
    tokens: Sequence[int] | None = None,
) -> list[TooLong]:
    """The prompts over ``budget`` (a :class:`PromptBudget` or a token limit), as ``TooLong(id,
    tokens)`` in input order; ``tokens``: the prompts' lengths when already counted (``ValueError``
    when ``ids`` or ``tokens`` and ``prompts`` differ in length)."""
    if len(ids) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(ids)} ids")
    lengths = list(tokens) if tokens is not None else count_tokens(tokenizer, prompts)
    limit = budget.limit if isinstance(budget, PromptBudget) else int(budget)
    return [TooLong(pid, n) for pid, n in zip(ids, lengths, strict=True) if n > limit]


def check_prompts(
    tokenizer: Any,
    prompts: Sequence[str],
    ids: Sequence[Any],
    budget: PromptBudget,
    tokens: Sequence[int] | None = None,
    kind: str = "pair",
) -> list[int]:
    """Refuse prompts over ``budget`` before anything is generated; return the token counts.

    Raises:
        PromptTooLongError: ``pair 'p7': the prompt is 14012 tokens, over the 3840 tokens (context
            4096 from config.max_position_embeddings, minus 256 for generation)``, and the others.
    """
    lengths = list(tokens) if tokens is not None else count_tokens(tokenizer, prompts)
    too_long = find_too_long(tokenizer, prompts, ids, budget, lengths)
    if too_long:
        raise PromptTooLongError(too_long, budget, kind)
    return lengths
