"""Batched greedy generation: prompts sorted by length, left-padded, decoded with the KV cache and
put back in input order. The batch size can change the last digits of the logits (padding changes
the shapes of the matrix products), so compare runs at one batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .context import check_prompts, count_tokens, known_budget

SCORES_STOP: tuple[str, ...] = ("</scores>",)  # the end of a reward-model verdict
SCORE_STOP: tuple[str, ...] = ("</score>",)  # the end of a pointwise verdict (persrm_lib.core.pointwise)


@dataclass(frozen=True)
class GenerationResult:
    """Completions in input order, plus what a benchmark needs. ``cut_off[i]``: completion ``i`` hit
    ``max_new_tokens`` without an end-of-turn token or a stop string (empty when not recorded)."""

    texts: list[str]
    new_tokens: list[int]  # tokens generated per prompt, up to and including the end-of-turn or stop token
    prompt_tokens: list[int]
    seconds: float
    batch_size: int
    extra: dict[str, Any] = field(default_factory=dict)
    cut_off: list[bool] = field(default_factory=list)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The generation config's end-of-turn ids and the tokenizer's, each once."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    values = [*(configured if isinstance(configured, list) else [configured]), tokenizer.eos_token_id]
    return list(dict.fromkeys(int(value) for value in values if value is not None))


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to and including the first of ``stop_strings`` it holds, and whether one was found."""
    ends = [text.find(s) + len(s) for s in stop_strings if s and s in text]
    return (text[: min(ends)], True) if ends else (text, False)


def _trim(ids: list[int], eos_ids: Sequence[int], pad_id: int | None) -> list[int]:
    """The ids up to and including the first end-of-turn token, else without trailing padding."""
    for end, token in enumerate(ids):
        if token in eos_ids:
            return ids[: end + 1]
    kept = list(ids)
    while pad_id is not None and kept and kept[-1] == pad_id:
        kept.pop()
    return kept


def _prefill_each(model: Any, input_ids: Any, attention_mask: Any) -> Any:
    """Each row's prompt-but-last-token KV cache, read without padding, left-padded into one cache."""
    import torch
    from transformers import DynamicCache

    width = input_ids.shape[1] - 1
    per_row = [
        model(input_ids=ids[mask.bool()][None, :-1], use_cache=True).past_key_values
        for ids, mask in zip(input_ids, attention_mask, strict=True)
    ]

    def left_pad(states: Any) -> Any:  # along the sequence axis, to the batch's width
        return torch.nn.functional.pad(states, (0, 0, width - states.shape[-2], 0))

    cache = DynamicCache()
    for layer in range(len(per_row[0].layers)):
        keys = torch.cat([left_pad(past.layers[layer].keys) for past in per_row])
        cache.update(keys, torch.cat([left_pad(past.layers[layer].values) for past in per_row]), layer)
    return cache


def _text_stop(tokenizer: Any, width: int, stop_when: Callable[[str], bool]) -> Any:
    """A transformers ``StoppingCriteria`` that ends each row whose completion so far (the ids after
    the first ``width``, decoded without special tokens) makes ``stop_when`` true."""
    import torch
    from transformers import StoppingCriteria

    class TextStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tokenizer.batch_decode(
                input_ids[:, width:], skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            return torch.tensor([bool(stop_when(text)) for text in texts], dtype=torch.bool, device=input_ids.device)

    return TextStop()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 8,
    *,
    stop_strings: Sequence[str] = (),
    stop_when: Callable[[str], bool] | None = None,
    prefill_each: bool = False,
) -> GenerationResult:
    """Greedy completions of ``prompts`` (chat-templated text, special tokens in it) by a causal LM
    in eval mode (PEFT-wrapped or not), ``batch_size`` prompts per forward pass, each ending at the
    end-of-turn token or after ``max_new_tokens`` tokens: a :class:`GenerationResult` of the decoded
    completions without special tokens, in input order. Prompts longer than the model's context
    minus ``max_new_tokens`` are refused before anything is generated (when the model says its
    context).

    Args:
        stop_strings: a completion ends, and its text is cut, right after one of them (e.g.
            :data:`SCORES_STOP`); ``extra["stopped"]`` counts those cut there.
        stop_when: a completion also ends right after the token that makes ``stop_when(text so
            far)`` true (e.g. ``not`` :func:`persrm_lib.core.output_format.can_still_parse`: a
            completion that can no longer parse stops at once); ``extra["stopped_when"]`` counts them.
            Rows are independent, so the other completions of a batch do not change.
        prefill_each: read each prompt of a batch alone and batch only the decoding (the same
            completions; on a 2-core CPU it did not pay, benchmarks/bench_generation.py).

    Raises:
        ValueError: ``max_new_tokens`` or ``batch_size`` below 1.
        PromptTooLongError: a prompt does not fit (``prompt 3: the prompt is ... tokens, ...``).
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
    lengths = count_tokens(tokenizer, prompts)
    budget = known_budget(model, tokenizer, reserved=max_new_tokens) if prompts else None
    if budget is not None:  # None: the model does not say its context
        check_prompts(tokenizer, prompts, list(range(len(prompts))), budget, lengths, kind="prompt")
    # longest first: a batch that does not fit in memory fails at once, not at the end
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    texts: list[str] = [""] * len(prompts)
    new_tokens: list[int] = [0] * len(prompts)
    cut_off: list[bool] = [False] * len(prompts)
    stops = [s for s in stop_strings if s]
    stopped = 0
    stopped_when = 0
    device = next(model.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            batch = tokenizer(
                [prompts[i] for i in index],
                return_tensors="pt",
                padding=True,
                padding_side="left",  # a decoder-only model continues from the last real token
                add_special_tokens=False,
            ).to(device)
            cached: dict[str, Any] = {}
            if stop_when is not None:
                cached["stopping_criteria"] = [_text_stop(tokenizer, batch["input_ids"].shape[1], stop_when)]
            if prefill_each and len(index) > 1 and min(lengths[i] for i in index) > 1:
                cached["past_key_values"] = _prefill_each(model, batch["input_ids"], batch["attention_mask"])
            output = model.generate(
                **batch,
                **cached,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                use_cache=True,
                eos_token_id=eos_ids,
                pad_token_id=tokenizer.pad_token_id,
                stop_strings=stops or None,  # transformers' StopStringCriteria
                tokenizer=tokenizer,
            )
            generated = output[:, batch["input_ids"].shape[1] :].tolist()
            for i, ids in zip(index, generated, strict=True):
                kept = _trim(ids, eos_ids, tokenizer.pad_token_id)
                text = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                texts[i], found = cut_at_stop(text, stops)
                stopped += found
                # a stop string or stop_when ended the row where it first held (for stop_when: it holds at the
                # end only if it held then): what follows is padding, which may be the end-of-turn token
                # itself (SmolLM2 pads with it), not an end of turn
                when = not found and stop_when is not None and bool(stop_when(texts[i]))
                if (found or when) and kept and kept[-1] in eos_ids:
                    kept = kept[:-1]
                stopped_when += when
                new_tokens[i] = len(kept)
                ended = bool(kept) and kept[-1] in eos_ids
                cut_off[i] = not ended and not found and not when and len(kept) >= max_new_tokens
    return GenerationResult(
        texts=texts,
        new_tokens=new_tokens,
        prompt_tokens=lengths,
        seconds=time.perf_counter() - start,
        batch_size=batch_size,
        extra={"stopped": stopped, "stop_strings": list(stops), "stopped_when": stopped_when},
        cut_off=cut_off,
    )
