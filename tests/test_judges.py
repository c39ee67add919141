"""Judges and their factory on small hand-made pairs and the tiny-random model (seconds); SmolLM2
checks are slow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from eval_fixtures import CASUAL, FORMAL, make_pairs

from persrm_lib.core.output_format import render_output
from persrm_lib.core.verdict import exemplars_of
from persrm_lib.evaluate import judges as J
from persrm_lib.evaluate.judges import NotFittedError, Verdict, make_judge, swap_pair
from persrm_lib.models.client import LocalChatClient
from persrm_lib.models.generation import GenerationResult
from persrm_lib.train.adapters import AdapterMismatchError, load_adapter


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from persrm_lib.models.registry import load_model

    return load_model("tiny-random")


def copy_pair(**changes) -> dict:
    """Response B is an exact copy of the exemplar, response A is the other author's text."""
    pair = {
        "id": "copy",
        "query": "Write something.",
        "exemplars": [FORMAL[0]],
        "response_a": CASUAL[0],
        "response_b": FORMAL[0],
        "label": "b",
        "n_exemplars": 1,
    }
    pair.update(changes)
    return pair


@pytest.mark.parametrize(
    ("verdict", "preferred", "format_ok"),
    [
        (Verdict(7.0, 3.0), "a", True),  # A strictly higher
        (Verdict(2.0, 2.5), "b", True),  # B strictly higher
        (Verdict(5.0, 5.0), None, True),  # a tie prefers nothing (and counts as wrong)
        (Verdict(None, None, "garbage"), None, False),  # a format violation
    ],
)
def test_verdict_preferred(verdict: Verdict, preferred, format_ok: bool) -> None:
    assert verdict.preferred == preferred
    assert verdict.format_ok is format_ok


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (None, ["e1", "e2"]),  # the pair's own n_exemplars field (2)
        (1, ["e1"]),  # the first K
        (3, ["e1", "e2", "e3"]),  # all three, more than the pair's own field
    ],
)
def test_exemplars_of(n, expected) -> None:
    assert exemplars_of({"id": "x", "exemplars": ["e1", "e2", "e3"], "n_exemplars": 2}, n) == expected


def test_exemplars_of_too_many() -> None:
    with pytest.raises(ValueError, match="pair 'x' has 3 exemplar\\(s\\), 4 requested"):
        exemplars_of({"id": "x", "exemplars": ["e1", "e2", "e3"]}, 4)


def test_swap_pair_exchanges_responses_and_label() -> None:
    pair = copy_pair()
    swapped = swap_pair(pair)
    assert (swapped["response_a"], swapped["response_b"], swapped["label"]) == (FORMAL[0], CASUAL[0], "a")
    assert pair["label"] == "b"  # the original is untouched


def test_unknown_judge_name() -> None:
    with pytest.raises(ValueError, match="unknown judge 'oracle'; choose one of random, char-ngram"):
        make_judge("oracle")


def test_random_judge_is_seeded_and_order_free() -> None:
    pairs = make_pairs(6)
    first = make_judge("random", seed=1).score_batch(pairs)
    again = make_judge("random", seed=1).score_batch(list(reversed(pairs)))[::-1]
    other = make_judge("random", seed=2).score_batch(pairs)
    assert [(v.s_a, v.s_b) for v in first] == [(v.s_a, v.s_b) for v in again]
    assert [(v.s_a, v.s_b) for v in first] != [(v.s_a, v.s_b) for v in other]
    assert all(0.0 <= s < 1.0 for v in first for s in (v.s_a, v.s_b))
    swapped = make_judge("random", seed=1).score(swap_pair(pairs[0]))
    assert (swapped.s_a, swapped.s_b) == (first[0].s_b, first[0].s_a)


def test_random_judge_is_near_chance_on_many_pairs() -> None:
    pairs = [copy_pair(id=f"c{i}", response_a=f"text number {i}", label="b" if i % 2 else "a") for i in range(400)]
    hits = [v.preferred == p["label"] for v, p in zip(make_judge("random").score_batch(pairs), pairs, strict=True)]
    assert 0.43 < np.mean(hits) < 0.57


def test_char_ngram_prefers_an_exact_copy_of_the_exemplar() -> None:
    judge = make_judge("char-ngram").fit(make_pairs(8))
    verdict = judge.score(copy_pair())
    assert verdict.preferred == "b"
    assert verdict.s_b == pytest.approx(1.0)  # the copy IS the centroid of one exemplar
    assert verdict.s_a < 0.5


def test_char_ngram_finds_the_author_on_held_out_pairs() -> None:
    judge = make_judge("char-ngram").fit(make_pairs(8))
    test = make_pairs(16)[8:]
    hits = [v.preferred == p["label"] for v, p in zip(judge.score_batch(test, 1), test, strict=True)]
    assert hits == [True] * 8


def test_char_ngram_never_reads_labels() -> None:
    train = make_pairs(8)
    flipped = [{**swap_pair(p), "label": "a"} for p in train]  # same texts, other labels and slots
    unlabelled = [{k: v for k, v in p.items() if k != "label"} for p in train]
    vocabularies = [make_judge("char-ngram").fit(t).vectorizer for t in (train, flipped, unlabelled)]
    assert vocabularies[0].vocabulary_ == vocabularies[1].vocabulary_ == vocabularies[2].vocabulary_
    np.testing.assert_array_equal(vocabularies[0].idf_, vocabularies[1].idf_)
    np.testing.assert_array_equal(vocabularies[0].idf_, vocabularies[2].idf_)


def test_unfitted_judges_refuse_to_score() -> None:
    with pytest.raises(NotFittedError, match="'char-ngram' must be fitted"):
        make_judge("char-ngram").score(copy_pair())
    with pytest.raises(NotFittedError, match="'function-words' \\(delta\\) must be fitted"):
        make_judge("function-words").score(copy_pair())
    with pytest.raises(NotFittedError, match="'scalar-rm' must be fitted"):
        make_judge("scalar-rm").score(copy_pair())


@pytest.mark.parametrize("method", ["delta", "cosine"])
def test_function_words_prefer_the_copy(method: str) -> None:
    judge = make_judge("function-words", method=method).fit(make_pairs(8))
    verdict = judge.score(copy_pair())
    assert verdict.preferred == "b"
    if method == "delta":
        assert verdict.s_b == pytest.approx(0.0)  # Delta of a text to itself is zero
    else:
        assert verdict.s_b == pytest.approx(1.0)


def test_function_words_bad_method() -> None:
    with pytest.raises(ValueError, match="method must be 'delta' or 'cosine', got 'burrows'"):
        make_judge("function-words", method="burrows")


def test_embedding_judge_scores_the_copy_as_identical() -> None:
    verdict = make_judge("embedding").score(copy_pair())
    assert verdict.s_b == pytest.approx(1.0, abs=1e-5)
    assert verdict.s_a < 0.5


def test_loglik_batched_equals_one_at_a_time(tiny) -> None:
    pairs = make_pairs(4)
    batched = make_judge("loglik", loaded=tiny, batch_size=8).score_batch(pairs, 1)
    single = [make_judge("loglik", loaded=tiny, batch_size=1).score(p, 1) for p in pairs]
    for b, s in zip(batched, single, strict=True):
        assert b.s_a == pytest.approx(s.s_a, abs=1e-4)
        assert b.s_b == pytest.approx(s.s_b, abs=1e-4)


def test_loglik_pmi_is_conditional_minus_unconditional(tiny) -> None:
    model, tokenizer = tiny
    pair = make_pairs(1)[0]
    pmi = make_judge("loglik", loaded=tiny).score(pair, 1)
    conditional = make_judge("loglik", loaded=tiny, mode="conditional").score(pair, 1)
    # the unconditional term by hand: mean token log-probability after the neutral header only
    head = tokenizer(J.LoglikJudge.CONTEXT_TAIL, add_special_tokens=False)["input_ids"]
    body = tokenizer(pair["response_a"].strip(), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([head + body])).logits[0]
    logprobs = torch.log_softmax(logits[:-1], dim=-1)[torch.arange(len(head + body) - 1), torch.tensor(head + body)[1:]]
    unconditional = float(logprobs[len(head) - 1 :].mean())
    assert pmi.s_a == pytest.approx(conditional.s_a - unconditional, abs=1e-4)


def test_loglik_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode must be 'pmi' or 'conditional'"):
        make_judge("loglik", mode="raw")


def test_generative_judge_keeps_completion_of_a_broken_output(tiny) -> None:
    judge = make_judge("generative", loaded=tiny, max_new_tokens=6, batch_size=2)
    assert judge.last_generation is None  # nothing generated yet
    verdicts = judge.score_batch(make_pairs(3), 1)
    assert isinstance(judge.client, LocalChatClient) and judge.client.model is tiny[0]  # the one LLM client
    assert [v.format_ok for v in verdicts] == [False, False, False]  # a random model writes no format
    assert all(isinstance(v.completion, str) for v in verdicts)
    assert all(1 <= n <= 6 for n in judge.last_generation.new_tokens)


def test_generative_judge_reads_scores_through_parse_output(tiny, monkeypatch) -> None:
    canned = [render_output("rhythm", "A fits", (8, 2)), "no tags at all", render_output("c", "e", (4, 4))]

    def fake_generate(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, stop_when=None):
        assert stop_when is None  # the judge stops early only when told (stop_unparsable)
        assert len(prompts) == 3 and all("Exemplar 1:" in p for p in prompts)
        assert stop_strings == ("</scores>",)  # the judge stops each completion at </scores>
        return GenerationResult(canned, [5, 5, 5], [10, 10, 10], 0.1, batch_size)

    monkeypatch.setattr("persrm_lib.models.client.generate", fake_generate)  # what LocalChatClient calls
    verdicts = make_judge("generative", loaded=tiny).score_batch(make_pairs(3), 1)
    assert [(v.s_a, v.s_b, v.preferred) for v in verdicts] == [(8.0, 2.0, "a"), (None, None, None), (4.0, 4.0, None)]
    assert verdicts[1].completion == "no tags at all"


def test_generation_batched_matches_one_at_a_time_in_input_order(tiny) -> None:
    from persrm_lib.core.prompt import build_prompt_text
    from persrm_lib.models.generation import generate

    model, tokenizer = tiny
    prompts = [build_prompt_text(tokenizer, p, 1) for p in make_pairs(3)] + ["<|im_start|>user\nhi<|im_end|>\n"]
    side = tokenizer.padding_side
    batched = generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=4)
    single = generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=1)
    assert batched.texts == single.texts  # greedy, left padding: padding does not change the tokens
    assert batched.prompt_tokens[3] < batched.prompt_tokens[0]  # the short prompt stayed in its place
    assert tokenizer.padding_side == side  # restored
    again = generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=4)
    assert again.texts == batched.texts  # deterministic


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1, got 0"),  # nothing to generate
        ({"max_new_tokens": 4, "batch_size": 0}, "batch_size must be at least 1, got 0"),  # no batch
    ],
)
def test_generation_bad_settings(tiny, kwargs, message) -> None:
    from persrm_lib.models.generation import generate

    with pytest.raises(ValueError, match=message):
        generate(tiny[0], tiny[1], ["x"], **kwargs)


def _tiny_lora(model, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])).save_pretrained(folder)
    return folder


def test_adapter_that_fits_loads(tmp_path: Path, tiny_model_dir) -> None:
    from persrm_lib.models.registry import load_model

    base, _ = load_model("tiny-random")
    adapter = _tiny_lora(base, tmp_path / "adapter")
    fresh, _ = load_model("tiny-random")
    merged = load_adapter(fresh, adapter, "tiny-random")
    assert type(merged).__name__ == "Qwen2ForCausalLM"  # merged back into a plain model


def test_adapter_for_another_hidden_size_names_both(tmp_path: Path, tiny_model_dir) -> None:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from persrm_lib.models.registry import load_model

    model, _ = load_model("tiny-random")
    config = Qwen2Config(**{**model.config.to_dict(), "hidden_size": 32, "intermediate_size": 64})
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "narrow")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "narrow")
    narrow = Qwen2ForCausalLM.from_pretrained(tmp_path / "narrow")
    adapter = _tiny_lora(narrow, tmp_path / "adapter")
    with pytest.raises(
        AdapterMismatchError,
        match=r"adapter .*adapter \(saved for base model '.*narrow'\) does not fit model 'tiny-random' \(hidden size 64\).*size mismatch",
    ):
        load_adapter(model, adapter, "tiny-random")


def test_adapter_folder_without_config(tmp_path: Path, tiny) -> None:
    with pytest.raises(FileNotFoundError, match="no PEFT adapter at .*adapter_config.json is missing"):
        load_adapter(tiny[0], tmp_path, "tiny-random")


def test_scalar_rm_trains_with_trl_and_scores_each_response_alone(tiny_model_dir) -> None:
    train = make_pairs(8)
    judge = make_judge(
        "scalar-rm", model="tiny-random", max_steps=4, scalar_rm_batch_size=4, learning_rate=1e-3, lora_r=None
    )
    judge.fit(train)
    losses = [entry["loss"] for entry in judge.log_history if "loss" in entry]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert judge.model.config.num_labels == 1
    pair = make_pairs(10)[9]
    verdict = judge.score(pair, 1)
    swapped = judge.score(swap_pair(pair), 1)
    assert (swapped.s_a, swapped.s_b) == pytest.approx((verdict.s_b, verdict.s_a), abs=1e-5)
    assert verdict.s_a != verdict.s_b


def test_scalar_rm_training_moves_the_score_head(tiny_model_dir) -> None:
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(0)
    initial = (
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).score.weight.detach().clone()
    )
    judge = make_judge(
        "scalar-rm", model="tiny-random", max_steps=2, scalar_rm_batch_size=4, learning_rate=1e-2, lora_r=4, seed=0
    )
    judge.fit(make_pairs(8))
    trained = judge.model.score.weight.detach()
    assert trained.shape == initial.shape
    assert not torch.allclose(trained, initial)  # the LoRA setup trains the score head too (modules_to_save)


@pytest.mark.slow
def test_loglik_with_smollm2_prefers_a_copy_of_the_exemplar() -> None:
    verdict = make_judge("loglik", model="smollm2-135m-instruct").score(copy_pair())
    assert verdict.preferred == "b"
    assert verdict.s_b > 0.5  # copying is far more likely once the text has been seen


def test_embedding_judge_uses_the_run_cache(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def encoder(texts):
        calls.append(list(texts))
        # a text's vector: (number of words, number of commas, 1)
        return np.array([[len(t.split()), t.count(","), 1.0] for t in texts], dtype=np.float32)

    judge = make_judge("embedding", cache_path=tmp_path / "embeddings.npz", encoder=encoder)
    pair = copy_pair(exemplars=["one two, three", "four five, six"], response_a="a b, c", response_b="a")
    verdict = judge.score(pair, 2)
    assert verdict.s_a == pytest.approx(1.0)  # the same (3, 1, 1) direction as the centroid
    assert verdict.preferred == "a"
    assert len(calls) == 1  # every text of the batch embedded in one pass
    judge.score(pair, 2)
    assert len(calls) == 1  # and never again


@pytest.mark.parametrize("name", J.JUDGES)
def test_every_judge_has_the_one_interface(name: str) -> None:
    settings = {"model": "tiny-random"} if name in J.MODEL_JUDGES else {}
    judge = make_judge(name, **settings)  # nothing is loaded until the first score
    assert isinstance(judge, J.Judge)
    assert judge.name == name
    # the generative judge and the evidence regression read A and B together; the others score each alone
    assert judge.position_invariant is (name not in ("generative", "evidence-lr"))


@pytest.mark.parametrize(
    ("name", "settings", "attribute", "expected"),
    [
        # a run-wide setting reaches the judges that read it ...
        ("random", {"seed": 7, "model": "tiny-random"}, "seed", 7),
        ("loglik", {"batch_size": 3, "seed": 7}, "batch_size", 3),
        ("generative", {"max_new_tokens": 5, "scalar_rm_steps": 9}, "max_new_tokens", 5),
        ("embedding", {"embedding_cache": None, "batch_size": 3}, "name", "embedding"),
        # ... under the judge's own argument name: the scalar reward model's batch is scalar_rm_batch_size
        ("scalar-rm", {"scalar_rm_steps": 9, "batch_size": 99}, "max_steps", 9),
        ("scalar-rm", {"scalar_rm_batch_size": 2, "batch_size": 99}, "batch_size", 2),
        ("scalar-rm", {"scalar_rm_max_length": 300}, "max_length", 300),
        # a judge's own argument passes through as it is
        ("function-words", {"method": "cosine", "seed": 1}, "method", "cosine"),
        ("generative", {"name": "rm-sft", "adapter": None}, "name", "rm-sft"),
    ],
)
def test_make_judge_routes_run_settings(name: str, settings: dict, attribute: str, expected) -> None:
    assert getattr(make_judge(name, **settings), attribute) == expected


def test_make_judge_refuses_an_argument_the_judge_does_not_take() -> None:
    with pytest.raises(TypeError, match="method"):
        make_judge("random", method="cosine")  # neither a run-wide setting nor a RandomJudge argument


def test_what_each_judge_learns_from() -> None:
    learns = {name: make_judge(name).learns_from for name in J.JUDGES}
    assert learns == {
        "random": "nothing",
        "char-ngram": "texts",  # vocabulary and idf, never a label
        "function-words": "texts",  # z-scores of the training texts
        "embedding": "nothing",
        "loglik": "nothing",
        "generative": "nothing",  # trained by 03/04, not by fit()
        "scalar-rm": "labels",
        "lambdag": "labels",  # its reference corpus: the training authors' passages
        "evidence-lr": "labels",  # a logistic regression on the evidence features
    }
    assert J.MODEL_JUDGES == ("loglik", "generative", "scalar-rm")
    assert J.ADAPTER_JUDGES == ("generative",)


def force_rows(model, tokenizer, scripts: list[str]):
    """Make ``model`` write ``scripts[row % len(scripts)]`` then end its turn, row by row of each batch."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in scripts]
    step = {"n": 0}

    def hook(module, args, kwargs, output):
        step["n"] = 0 if kwargs["input_ids"].shape[1] > 1 else step["n"] + 1  # the prompt, then one token a call
        logits = torch.full_like(output.logits[:, -1, :], -1e9)
        for row in range(logits.shape[0]):
            script = ids[row % len(ids)]
            logits[row, script[min(step["n"], len(script) - 1)]] = 0.0
        output.logits[:, -1, :] = logits
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("mode", ["pairwise", "pointwise"])
def test_stopping_unparsable_completions_keeps_every_verdict(tiny, mode: str) -> None:
    from persrm_lib.evaluate.lm_judges import GenerativeJudge

    model, tokenizer = tiny
    valid = (
        render_output("c", "e", (7, 3))
        if mode == "pairwise"
        else "<criteria>c</criteria><eval>e</eval><score>7</score>"
    )
    pairs = make_pairs(4)
    plain = GenerativeJudge(loaded=tiny, mode=mode, max_new_tokens=64, batch_size=4)
    early = GenerativeJudge(loaded=tiny, mode=mode, max_new_tokens=64, batch_size=4, stop_unparsable=True)
    handle = force_rows(model, tokenizer, [valid, "The response reads like the exemplars, so A wins."])
    try:
        full, short = plain.score_batch(pairs, 1), early.score_batch(pairs, 1)
    finally:
        handle.remove()
    assert [(v.s_a, v.s_b, v.format_ok) for v in short] == [(v.s_a, v.s_b, v.format_ok) for v in full]
    assert any(v.format_ok for v in full) and not all(v.format_ok for v in full)  # both kinds were judged
    rows = len(pairs) * (2 if mode == "pointwise" else 1)
    assert early.n_stopped_unparsable == rows // 2 and plain.n_stopped_unparsable == 0  # every second row
    assert sum(early.last_generation.new_tokens) < sum(plain.last_generation.new_tokens)
    assert early.describe()["n_stopped_unparsable"] == early.n_stopped_unparsable
    assert "stop_unparsable" not in plain.describe()


def test_stop_unparsable_and_strip_think_exclude_each_other(tiny) -> None:
    from persrm_lib.evaluate.lm_judges import GenerativeJudge

    with pytest.raises(ValueError, match="stop_unparsable and strip_think exclude each other"):
        GenerativeJudge(loaded=tiny, stop_unparsable=True, strip_think=True)
