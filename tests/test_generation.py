"""Batched greedy generation that stops at ``</scores>``: a scripted tiny-random model writes fixed
token sequences (a forward hook forces each step's token), so the exact decoded text is known."""

from __future__ import annotations

import pytest

from persrm_lib.models.client import LocalChatClient
from persrm_lib.models.generation import SCORES_STOP, cut_at_stop, generate
from persrm_lib.models.registry import load_model

VERDICT = "<criteria>\nc\n</criteria>\n<eval>\nA is closer to the author.\n</eval>\n<scores>[7, 3]</scores>"
AFTER = "\nand then it goes on and on"  # what a model that never closes its turn writes after the verdict
NO_STOP = "no verdict at all"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def scripted(model, tokenizer, texts: list[str], end_with_eos: list[bool], prompt_tokens: int):
    """Make ``model`` write ``texts[row]`` (row in batch order), then EOS where asked, then filler,
    after prompts of ``prompt_tokens`` tokens (no padding)."""
    import torch

    scripts = []
    for text, eos in zip(texts, end_with_eos, strict=True):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        scripts.append(ids + ([tokenizer.eos_token_id] if eos else []))
    filler = tokenizer("x", add_special_tokens=False)["input_ids"][0]

    def hook(module, args, kwargs, output):
        mask = kwargs.get("attention_mask")
        if mask is None:  # a prompt read alone to fill the cache (prefill_each): its logits are not used
            return output
        step = mask.shape[1] - prompt_tokens  # tokens generated before this one
        logits = torch.full_like(output.logits[:, -1, :], -1e9)
        for row in range(logits.shape[0]):
            script = scripts[row % len(scripts)]
            logits[row, script[step] if step < len(script) else filler] = 0.0
        output.logits[:, -1, :] = logits
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        # stop at </scores>: the text ends right after it, though the script goes on
        (SCORES_STOP, [VERDICT, NO_STOP]),
        # no stop string: the completion runs on to the token budget (the first row) or EOS (the second)
        ((), None),
    ],
)
def test_generation_stops_right_after_scores(tiny, stop, expected) -> None:
    model, tokenizer = tiny
    texts = [VERDICT + AFTER, NO_STOP]
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    handle = scripted(
        model, tokenizer, texts, [False, True], len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    )
    try:
        budget = len(tokenizer(VERDICT + AFTER, add_special_tokens=False)["input_ids"]) + 3
        result = generate(model, tokenizer, [prompt, prompt], max_new_tokens=budget, batch_size=2, stop_strings=stop)
    finally:
        handle.remove()
    verdict_tokens = len(tokenizer(VERDICT, add_special_tokens=False)["input_ids"])
    if expected is not None:
        assert result.texts == expected
        assert result.new_tokens[0] == verdict_tokens  # no padding counted after the stop
        assert result.extra["stopped"] == 1
    else:
        assert result.texts[0] == VERDICT + AFTER + "xxx"  # the filler, up to the budget
        assert result.texts[1] == NO_STOP  # a completion without the stop string is unchanged
        assert result.new_tokens[0] == budget
        assert result.extra["stopped"] == 0


def test_client_stops_at_scores_by_default_and_can_be_told_not_to(tiny) -> None:
    model, tokenizer = tiny
    messages = [{"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    handle = scripted(
        model, tokenizer, [VERDICT + AFTER], [False], len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    )
    try:
        default = LocalChatClient(model, tokenizer, max_new_tokens=120, batch_size=1)
        never = LocalChatClient(model, tokenizer, max_new_tokens=120, batch_size=1, stop_strings=())
        assert default.stop_strings == ("</scores>",)
        assert default.complete(messages) == VERDICT
        assert never.complete(messages).startswith(VERDICT + AFTER)
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("<scores>[1, 2]</scores>\n", ["</scores>"], ("<scores>[1, 2]</scores>", True)),  # a token carried "\n"
        ("a</scores>b</scores>", ["</scores>"], ("a</scores>", True)),  # the first occurrence ends it
        ("abc", ["</scores>"], ("abc", False)),  # none: unchanged
        ("abc", [], ("abc", False)),  # no stop strings: unchanged
        ("x END y STOP", ["STOP", "END"], ("x END", True)),  # the earliest of several
    ],
)
def test_cut_at_stop(text: str, stops: list[str], expected: tuple[str, bool]) -> None:
    assert cut_at_stop(text, stops) == expected


@pytest.mark.parametrize("batch_size", [2, 4])
def test_prompts_read_alone_then_decoded_in_a_batch_match_one_at_a_time(tiny, batch_size: int) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from eval_fixtures import make_pairs

    from persrm_lib.core.prompt import build_prompt_text

    model, tokenizer = tiny
    # prompts of different lengths (left padding in a batch), and one of a single line
    prompts = [build_prompt_text(tokenizer, p, 1) for p in make_pairs(5)] + ["<|im_start|>user\nhi<|im_end|>\n"]
    single = generate(model, tokenizer, prompts, 10, batch_size=1)
    each = generate(model, tokenizer, prompts, 10, batch_size=batch_size, prefill_each=True)
    padded = generate(model, tokenizer, prompts, 10, batch_size=batch_size, prefill_each=False)
    assert each.texts == single.texts == padded.texts
    assert each.new_tokens == single.new_tokens == [10] * 6


@pytest.mark.parametrize("pad_is_end", [False, True])  # SmolLM2 pads with its end-of-turn token
def test_a_completion_that_cannot_parse_stops_at_once_and_the_others_do_not_change(tiny, pad_is_end) -> None:
    from persrm_lib.core.output_format import can_still_parse

    model, tokenizer = tiny
    pad = tokenizer.pad_token
    if pad_is_end:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [VERDICT + AFTER, NO_STOP]  # the second can never parse: it does not begin with <criteria>
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    width = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    budget = len(tokenizer(VERDICT + AFTER, add_special_tokens=False)["input_ids"]) + 3
    runs = {}
    for name, when in [("plain", None), ("stopping", lambda text: not can_still_parse(text))]:
        handle = scripted(model, tokenizer, texts, [False, False], width)
        try:
            runs[name] = generate(
                model, tokenizer, [prompt, prompt], budget, batch_size=2, stop_strings=SCORES_STOP, stop_when=when
            )
        finally:
            handle.remove()
            tokenizer.pad_token = pad
    assert (tokenizer.pad_token_id == tokenizer.eos_token_id) is False  # the fixture's own padding is back
    plain, stopping = runs["plain"], runs["stopping"]
    first = tokenizer.decode(tokenizer(NO_STOP, add_special_tokens=False)["input_ids"][:1])
    assert stopping.texts == [VERDICT, first]  # the doomed row ends after its first token
    assert stopping.new_tokens[1] == 1 and plain.new_tokens[1] == budget
    assert stopping.extra["stopped_when"] == 1 and plain.extra["stopped_when"] == 0
    assert stopping.cut_off == [False, False] and plain.cut_off == [False, True]
    assert stopping.texts[0] == plain.texts[0] and stopping.new_tokens[0] == plain.new_tokens[0]


def test_the_client_checks_the_answer_prefix_too(tiny) -> None:
    model, tokenizer = tiny
    messages = [{"role": "user", "content": "hi"}]
    seen: list[str] = []
    client = LocalChatClient(
        model,
        tokenizer,
        max_new_tokens=3,
        batch_size=1,
        answer_prefix="<criteria>",
        stop_when=lambda text: seen.append(text) or False,
    )
    client.complete(messages)
    assert seen and all(text.startswith("<criteria>") for text in seen)
