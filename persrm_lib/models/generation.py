"""Batched greedy generation for the generative judges (and anything else that needs completions).

Prompts are sorted by length and cut into batches (so little padding is wasted), padded on the
left (a decoder-only model continues from the last real token), decoded greedily with the KV
cache and a fixed ``max_new_tokens``, then put back in input order. Greedy decoding makes the
completions a function of the model and the prompts; the batch size can change the last digits of
the logits (padding changes the shapes of the matrix products), so compare runs at one batch size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .context import check_prompts, known_budget


@dataclass(frozen=True)
class GenerationResult:
    """Completions in input order, plus what a benchmark needs."""

    texts: list[str]
    new_tokens: list[int]  # tokens generated per prompt, up to and including the end-of-turn token
    prompt_tokens: list[int]
    seconds: float
    batch_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return sum(self.new_tokens) / self.seconds if self.seconds > 0 else float("nan")


@contextmanager
def _left_padding(tokenizer: Any):
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = previous


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (configured if isinstance(configured, list) else [configured]) + [tokenizer.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 8,
    *,
    check_context: bool = True,
) -> GenerationResult:
    """Greedy completions of ``prompts`` (already chat-templated text), batched.

    Args:
        model: a causal LM (transformers or PEFT-wrapped), in eval mode.
        tokenizer: its tokenizer; it needs a pad token (the eos token is used when it has none).
        prompts: the full prompt strings; special tokens are already in the text.
        max_new_tokens: generation stops at the end-of-turn token or after this many tokens.
        batch_size: prompts per forward pass (1: one at a time).
        check_context: refuse, before generating anything, prompts longer than the model's context
            minus ``max_new_tokens`` (:mod:`persrm_lib.models.context`; skipped when the model does
            not say its context). Callers that know the pair ids check first, naming them.

    Raises:
        PromptTooLongError: a prompt does not fit (``prompt 3: the prompt is ... tokens, ...``).

    Returns:
        A :class:`GenerationResult` whose ``texts`` are the decoded completions without special
        tokens, in the order of ``prompts``.

    >>> from persrm_lib.models.registry import load_model
    >>> model, tokenizer = load_model("tiny-random")
    >>> result = generate(model, tokenizer, ["<|im_start|>user\\nhi<|im_end|>\\n"] * 3, max_new_tokens=4, batch_size=2)
    >>> len(result.texts), max(result.new_tokens) <= 4
    (3, True)
    """
    import torch

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    prompts = list(prompts)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos_ids = _eos_ids(model, tokenizer)
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]] if prompts else []
    budget = known_budget(model, tokenizer, reserved=max_new_tokens) if check_context and prompts else None
    if budget is not None:  # None: the model does not say its context
        check_prompts(tokenizer, prompts, list(range(len(prompts))), budget, lengths, kind="prompt")
    # longest first: a batch that does not fit in memory fails at once, not at the end
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    texts: list[str] = [""] * len(prompts)
    new_tokens: list[int] = [0] * len(prompts)
    device = next(model.parameters()).device
    start = time.perf_counter()
    with _left_padding(tokenizer), torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            batch = tokenizer(
                [prompts[i] for i in index], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                use_cache=True,
                eos_token_id=eos_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
            generated = output[:, batch["input_ids"].shape[1] :].tolist()
            for i, ids in zip(index, generated, strict=True):
                kept: list[int] = []
                for token in ids:
                    kept.append(token)
                    if token in eos_ids:
                        break
                new_tokens[i] = len(kept)
                texts[i] = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    seconds = time.perf_counter() - start
    return GenerationResult(
        texts=texts, new_tokens=new_tokens, prompt_tokens=lengths, seconds=seconds, batch_size=batch_size
    )
