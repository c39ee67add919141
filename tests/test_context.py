"""The context-length check (issue 13, item 6): a prompt over the model's context minus the
generation budget is refused before anything is generated, naming the pair and its token count,
or counted for a ``too_long`` column."""

from __future__ import annotations

import pytest

from persrm_lib.core.prompt import build_prompt_text
from persrm_lib.models.context import (
    PromptBudget,
    PromptTooLongError,
    TooLong,
    check_prompts,
    count_tokens,
    find_too_long,
    model_context,
    prompt_budget,
)


class _Config:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class _Model:
    def __init__(self, **fields):
        self.config = _Config(**fields)


class _Tok:
    """Counts words as tokens; ``model_max_length`` as transformers writes it."""

    def __init__(self, model_max_length: int = int(1e30)):
        self.model_max_length = model_max_length

    def __call__(self, texts, add_special_tokens):
        assert add_special_tokens is False  # as generate() tokenises templated text
        return {"input_ids": [t.split() for t in texts]}


@pytest.mark.parametrize(
    ("model", "tokenizer", "max_length", "expected"),
    [
        # the config's positions when the tokenizer does not say (transformers' 1e30 sentinel)
        (_Model(max_position_embeddings=4096), _Tok(), None, (4096, "config.max_position_embeddings")),
        # the smaller of the two
        (_Model(max_position_embeddings=8192), _Tok(2048), None, (2048, "tokenizer.model_max_length")),
        (_Model(max_position_embeddings=1024), _Tok(2048), None, (1024, "config.max_position_embeddings")),
        # a configured cap (the profile's model.max_seq_length) below both
        (_Model(max_position_embeddings=4096), _Tok(), 1536, (1536, "max_length")),
        # GPT-2 style configs
        (_Model(n_positions=1024), None, None, (1024, "config.n_positions")),
        # a multimodal config keeps the language model's length in text_config
        (
            _Model(text_config=_Config(max_position_embeddings=32768)),
            None,
            None,
            (32768, "config.max_position_embeddings"),
        ),
    ],
)
def test_model_context(model, tokenizer, max_length, expected) -> None:
    assert model_context(model, tokenizer, max_length) == expected


def test_unknown_context_is_an_error() -> None:
    with pytest.raises(ValueError, match="the model's context length is unknown"):
        model_context(_Model(), _Tok())


def test_prompt_budget_subtracts_the_generation() -> None:
    budget = prompt_budget(_Model(max_position_embeddings=4096), _Tok(), reserved=256)
    assert (budget.limit, budget.describe()) == (
        3840,
        "3840 tokens (context 4096 from config.max_position_embeddings, minus 256 for generation)",
    )
    with pytest.raises(
        ValueError, match="no room for a prompt: context 4096 from config.max_position_embeddings, 4096"
    ):
        prompt_budget(_Model(max_position_embeddings=4096), reserved=4096)
    with pytest.raises(ValueError, match="reserved tokens must be at least 0, got -1"):
        prompt_budget(_Model(max_position_embeddings=4096), reserved=-1)


BUDGET = PromptBudget(context=12, reserved=2, source="config.max_position_embeddings")  # 10 tokens per prompt


def test_find_too_long_returns_the_ids_and_counts() -> None:
    prompts = ["w " * 10, "w " * 11, "w", "w " * 30]
    assert find_too_long(_Tok(), prompts, ["p1", 2, "p3", "p4"], BUDGET) == [TooLong(2, 11), TooLong("p4", 30)]
    assert find_too_long(_Tok(), prompts, ["p1", 2, "p3", "p4"], 30) == []  # a plain token limit
    with pytest.raises(ValueError, match="4 prompts but 3 ids"):
        find_too_long(_Tok(), prompts, ["a", "b", "c"], BUDGET)


def test_check_prompts_refuses_naming_the_pair_and_tokens() -> None:
    assert check_prompts(_Tok(), ["a b", "c"], ["p1", "p2"], BUDGET) == [2, 1]
    with pytest.raises(PromptTooLongError) as info:
        check_prompts(_Tok(), ["w", "w " * 14], ["p1", "p2"], BUDGET)
    assert str(info.value) == (
        "pair 'p2': the prompt is 14 tokens, over the 10 tokens (context 12 from config.max_position_embeddings, "
        "minus 2 for generation)"
    )
    assert info.value.too_long == [TooLong("p2", 14)]


def test_check_prompts_counts_the_others() -> None:
    prompts = ["w " * (11 + i) for i in range(7)]
    with pytest.raises(PromptTooLongError) as info:
        check_prompts(_Tok(), prompts, [f"p{i}" for i in range(7)], BUDGET)
    assert str(info.value).endswith(
        "minus 2 for generation); 6 more pair(s) too long: 'p1' (12), 'p2' (13), 'p3' (14), 'p4' (15), ..."
    )


# --- with the tiny model: the case of a 6,000-word response ------------------------------------


@pytest.fixture(scope="module")
def tiny():
    from persrm_lib.models.registry import load_model

    return load_model("tiny-random")


def _pair(pid: str, words: int) -> dict:
    return {
        "id": pid,
        "query": "Write.",
        "exemplars": ["We gathered at dawn."],
        "response_a": "The harvest came early.",
        "response_b": " ".join(["harvest"] * words),
    }


def test_a_6000_word_response_is_refused_before_generation(tiny) -> None:
    model, tokenizer = tiny
    budget = prompt_budget(model, tokenizer, reserved=256)
    assert (budget.context, budget.source) == (4096, "config.max_position_embeddings")  # tiny-random's 4k
    pairs = [_pair("short", 20), _pair("long-b", 6000)]
    prompts = [build_prompt_text(tokenizer, p, 1) for p in pairs]
    tokens = count_tokens(tokenizer, prompts)
    assert tokens[0] < 3840 < tokens[1]
    with pytest.raises(PromptTooLongError) as info:
        check_prompts(tokenizer, prompts, [p["id"] for p in pairs], budget)
    assert str(info.value) == (
        f"pair 'long-b': the prompt is {tokens[1]} tokens, over the 3840 tokens (context 4096 from "
        "config.max_position_embeddings, minus 256 for generation)"
    )
    assert find_too_long(tokenizer, prompts, [p["id"] for p in pairs], budget) == [TooLong("long-b", tokens[1])]


def test_generate_refuses_a_prompt_over_the_context(tiny) -> None:
    from persrm_lib.models.generation import generate

    model, tokenizer = tiny
    prompt = build_prompt_text(tokenizer, _pair("long-b", 6000), 1)
    n = count_tokens(tokenizer, [prompt])[0]
    with pytest.raises(PromptTooLongError) as info:
        generate(model, tokenizer, ["<|im_start|>user\nhi<|im_end|>\n", prompt], max_new_tokens=4)
    assert str(info.value) == (
        f"prompt 1: the prompt is {n} tokens, over the 4092 tokens (context 4096 from "
        "config.max_position_embeddings, minus 4 for generation)"
    )


def _full_pair(pid: str, words: int) -> dict:
    return {
        **_pair(pid, words),
        "label": "a",
        "positive_kind": "intra_author",
        "negative_kind": "random",
        "author": "x",
        "genre": "speech",
        "n_exemplars": 1,
    }


def test_evaluate_cli_exits_2_naming_the_too_long_pair(tiny, tmp_path, capsys) -> None:
    """The issue's case: a 6,000-word response B used to be judged anyway (exit 0, a format failure)."""
    from persrm_lib.data.pairs import write_pairs
    from persrm_lib.evaluate.cli import main

    _, tokenizer = tiny
    pairs = [_full_pair("short", 20), _full_pair("long-b", 6000)]
    path = write_pairs(pairs, tmp_path / "pairs.jsonl")
    n = count_tokens(tokenizer, [build_prompt_text(tokenizer, pairs[1], 1)])[0]
    argv = ["--pairs", str(path), "--judge", "generative", "--model", "tiny-random", "--max-new-tokens", "8"]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (  # after transformers' loading bar
        f"error: pair 'long-b': the prompt is {n} tokens, over the 4088 tokens (context 4096 from "
        "config.max_position_embeddings, minus 8 for generation)"
    )
    assert not (tmp_path / "r.json").exists()


def test_generative_judge_strips_a_think_block_only_when_asked(tiny, monkeypatch) -> None:
    from persrm_lib.evaluate.lm_judges import GenerativeJudge
    from persrm_lib.models.generation import GenerationResult

    answer = "<think>B drifts from the exemplar.</think>\n<criteria>c</criteria><eval>e</eval><scores>[8, 2]</scores>"

    def fake_generate(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings=(), stop_when=None):
        return GenerationResult([answer] * len(prompts), [5] * len(prompts), [10] * len(prompts), 0.1, batch_size)

    monkeypatch.setattr("persrm_lib.models.client.generate", fake_generate)
    strict = GenerativeJudge(loaded=tiny).score_batch([_pair("p1", 5)], 1)[0]
    assert (strict.scores, strict.format_ok) == (None, False)  # the default: the format stays strict
    judge = GenerativeJudge(loaded=tiny, strip_think=True)
    verdicts = judge.score_batch([_pair("p1", 5), _pair("p2", 5)], 1)
    assert [v.scores for v in verdicts] == [[8.0, 2.0], [8.0, 2.0]]
    assert verdicts[0].completion == answer  # the record keeps what the model wrote
    assert judge.n_stripped == 2 and judge.describe()["n_stripped"] == 2
