"""SFT and GRPO through TRL on the tiny-random model (seconds): weights change, logs and adapters are
written and reload, and every bad input is refused before a model is loaded."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import make_pair, make_trace, write_jsonl

from persrm_lib.core import runfiles
from persrm_lib.core.config import get_profile
from persrm_lib.core.output_format import render_output
from persrm_lib.models import backend
from persrm_lib.train import data, grpo, logs, sft
from persrm_lib.train.adapters import load_trained
from persrm_lib.train.data import TrainingDataError
from persrm_lib.train.logs import (
    GRPO_COMPLETION_FIELDS,
    GRPO_LOG_FIELDS,
    SFT_LOG_FIELDS,
    RewardTracker,
    TrainingLog,
    read_grpo_completions,
    read_log,
)
from persrm_lib.train.validation import ValidationEval

N_PAIRS = 8


def varied_reward(completions: list, label: list, **kwargs: object) -> list[float]:
    """A stand-in reward that differs within a group (the tiny random model never writes the format,
    so the paper's reward is -1 everywhere and gives GRPO no advantage to follow)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(sum(map(ord, t)) % 3 - 1) for t in texts]


@pytest.fixture(scope="module")
def tiny():
    return get_profile("tiny")


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny):
    run = tmp_path_factory.mktemp("run")
    write_jsonl(runfiles.faithful_traces_path(run), [make_trace(i) for i in range(N_PAIRS)])
    write_jsonl(runfiles.pairs_path(run, "train"), [make_pair(i) for i in range(N_PAIRS)])
    return run, sft.train_sft(tiny, run)


def log_rows(path: Path) -> list[dict]:
    """The rows of a log.csv as read by read_log, with a blank cell as None."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in read_log(path).to_dict("records")]


def lora_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "adapter_model.safetensors"))


# ---- SFT ----------------------------------------------------------------------------------------


def test_sft_trains_and_changes_weights(sft_run, tiny) -> None:
    run, result = sft_run
    assert (result.stage, result.backend, result.steps, result.examples) == (
        "sft",
        "transformers",
        2,
        2 * N_PAIRS,
    )  # both orders
    assert math.isfinite(result.final_loss) and result.final_loss > 0
    fresh, _, _ = backend.load_for_training(tiny)  # same seed: the LoRA layers SFT started from
    start = {k.replace(".default", ""): v for k, v in fresh.state_dict().items() if "lora_" in k}
    trained = lora_tensors(result.adapter_dir)
    assert set(trained) == set(start) and len(trained) > 0
    changed = [k for k in trained if not torch.equal(trained[k], start[k])]
    assert len(changed) == len(trained)  # every LoRA matrix moved (B starts at zero, A gets gradients through B)


def test_sft_writes_log_and_adapter_files(sft_run) -> None:
    run, result = sft_run
    assert result.log_path == runfiles.log_path(run, "sft")
    with result.log_path.open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == SFT_LOG_FIELDS
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(float(r["loss"]) > 0 and float(r["seconds_per_step"]) > 0 for r in rows)
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)  # tiny profile's lr, linear decay after
    assert float(rows[1]["num_tokens"]) > float(rows[0]["num_tokens"]) > 0
    assert log_rows(result.log_path)[1]["loss"] == pytest.approx(result.final_loss)
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "persrm_training.json", "tokenizer.json"} <= files
    info = json.loads((result.adapter_dir / "persrm_training.json").read_text())
    assert (info["stage"], info["model"], info["steps"], info["lora"]["r"]) == ("sft", "tiny-random", 2, 4)


def test_adapter_reloads(sft_run, tiny) -> None:
    _, result = sft_run
    model, _, name = load_trained(tiny, result.adapter_dir)
    saved = lora_tensors(result.adapter_dir)
    key = sorted(k for k in saved if "lora_B" in k)[0]
    loaded = dict(model.named_parameters())[key.replace(".weight", ".default.weight")]
    assert name == "transformers"
    assert torch.equal(loaded.detach(), saved[key])
    assert loaded.requires_grad  # reloaded for further training


def test_sft_is_deterministic(sft_run, tiny, tmp_path) -> None:
    _, first = sft_run
    again = sft.train_sft(tiny, tmp_path, [make_trace(i) for i in range(N_PAIRS)])
    assert again.final_loss == first.final_loss
    a, b = lora_tensors(first.adapter_dir), lora_tensors(again.adapter_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trainer_view_splits_one_example_where_the_loss_starts(sft_run, tiny) -> None:
    _, result = sft_run
    trace = make_trace(0)
    view = sft.trainer_view(tiny, trace, result.model, result.tokenizer)
    assert view["id"] == str(trace["id"]) and view["prompt_tokens"] > 0 and view["completion_tokens"] > 0
    assert trace["exemplars"][0] in view["prompt_text"]  # the templated prompt, exemplars included
    assert trace["completion"] in view["completion_text"] and trace["completion"] not in view["prompt_text"]
    ids = result.tokenizer(view["prompt_text"] + view["completion_text"], add_special_tokens=False)["input_ids"]
    assert len(ids) == view["prompt_tokens"] + view["completion_tokens"]
    with pytest.raises(IndexError, match=r"gives 1 SFT example\(s\), not an example 1"):
        sft.trainer_view(tiny, trace, result.model, result.tokenizer, row=1)


def test_sft_dataset_is_conversational_prompt_completion(tiny) -> None:
    dataset = data.sft_dataset([make_trace(0)])
    row = dataset[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["completion"] == [{"role": "assistant", "content": make_trace(0)["completion"]}]
    assert "Second exemplar." not in row["prompt"][1]["content"]  # the pair's n_exemplars=1 is honoured


def test_sft_loss_is_on_the_completion_only(tiny, tmp_path) -> None:
    model, tokenizer, name = backend.load_for_training(tiny)
    trace = make_trace(1)
    trainer = sft.sft_trainer(tiny, tmp_path, [trace], model, tokenizer, name)
    labels = trainer.data_collator.collate([trainer.train_dataset[0]])["labels"][0].tolist()  # before the cut
    learned = [t for t in labels if t != -100]
    assert tokenizer.decode(learned) == trace["completion"] + "<|im_end|>\n"  # the trace and the end of turn
    assert labels[: len(labels) - len(learned)] == [-100] * (len(labels) - len(learned))  # the prompt is masked


def test_the_head_runs_only_where_the_loss_is_and_the_loss_and_gradients_do_not_change(tiny, tmp_path) -> None:
    model, tokenizer, name = backend.load_for_training(tiny)
    traces = [make_trace(i) for i in range(3)]
    longer = "The harvest came early this year, and the barns filled by noon; we rested after. " * 2
    traces[1] = traces[1] | {"exemplars": [longer, "Second exemplar."]}  # a longer prompt: padding in the batch
    trainer = sft.sft_trainer(tiny, tmp_path, traces, model, tokenizer, name)
    assert isinstance(trainer.data_collator, sft.CompletionLogits) and trainer.args.loss_type == "nll"
    rows = [trainer.train_dataset[i] for i in range(3)]
    full, cut = trainer.data_collator.collate(rows), trainer.data_collator(rows)
    labels, width = full["labels"], full["labels"].shape[1]
    starts = [next(i for i, t in enumerate(row.tolist()) if t != -100) for row in labels]
    assert len(set(starts)) > 1  # the completions start at different columns: the cut spans them all
    first = min(starts)
    assert cut["logits_to_keep"] == width - first + 1 < width  # from the token before the earliest completion
    assert torch.equal(cut["labels"], labels[:, first - 1 :]) and torch.equal(cut["input_ids"], full["input_ids"])
    assert (cut["labels"] != -100).sum() == (labels != -100).sum()  # every scored token kept

    def loss_and_grads(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    (loss_full, grads_full), (loss_cut, grads_cut) = loss_and_grads(full), loss_and_grads(cut)
    assert torch.allclose(loss_cut, loss_full, rtol=1e-6, atol=0)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(grads_cut, grads_full, strict=True))
    model.zero_grad()


# ---- GRPO ---------------------------------------------------------------------------------------


def test_grpo_step_changes_the_adapter(sft_run, tiny, tmp_path) -> None:
    run, sft = sft_run
    result = grpo.train_grpo(
        tiny,
        tmp_path,
        pairs=[make_pair(i) for i in range(N_PAIRS)],
        sft_adapter=sft.adapter_dir,
        reward_fn=varied_reward,
    )
    assert (result.stage, result.steps) == ("rft", 1)
    before, after = lora_tensors(sft.adapter_dir), lora_tensors(result.adapter_dir)
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (result.adapter_dir / "ref").exists()  # TRL's frozen reference copy is not saved as the result
    info = json.loads((result.adapter_dir / "persrm_training.json").read_text())
    assert info["from_sft"] == str(sft.adapter_dir)

    (row,) = result.log
    assert tuple(row) == GRPO_LOG_FIELDS
    assert row["step"] == 1
    assert row["format_violation"] + row["wrong"] + row["correct"] == pytest.approx(1.0)
    records = [json.loads(line) for line in result.completions_path.read_text().splitlines()]
    assert len(records) == tiny.grpo.batch_size  # one generation batch per optimiser step
    rewards = [r["reward"] for r in records]
    assert row["reward"] == pytest.approx(sum(rewards) / len(rewards))
    assert row["correct"] == pytest.approx(rewards.count(1.0) / len(rewards))
    assert row["completion_length"] > 0 and row["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1


def test_one_batch_opened_up_is_the_batch_and_loss_the_trainer_trains_on(sft_run, tiny, tmp_path) -> None:
    _, sft_result = sft_run
    pairs = [make_pair(i) for i in range(N_PAIRS)]
    moved = grpo.train_grpo(tiny, tmp_path / "moved", pairs, sft_result.adapter_dir, reward_fn=varied_reward)
    losses = {}
    for beta in (0.0, 0.5):
        profile = get_profile("tiny", {"grpo.beta": beta})
        trainer = grpo.inspection_trainer(
            profile, pairs, sft_result.adapter_dir, moved.adapter_dir, tmp_path / f"b{beta}", reward=varied_reward
        )
        batch = grpo.scored_batch(trainer, pair_index=1, seed=0)
        g = trainer.num_generations
        mask = batch["completion_mask"].float()
        assert batch["completion_ids"].shape[0] == 2 * g and mask.shape == batch["completion_ids"].shape
        # the joint group: both orders of pair 1 (rows 2 and 3 of the dataset), advantages centred over all 2G
        assert abs(float(batch["advantages"].sum())) < 1e-4 and float(batch["advantages"].abs().max()) > 0
        assert batch.get("old_per_token_logps") is None  # on-policy: one update per generation
        assert batch["num_items_in_batch"] == mask.sum()
        losses[beta] = grpo.trainer_loss(trainer, batch).item()
        # on-policy the ratio is exactly 1, so the loss value is minus the token-mean advantage (+ beta KL)
        policy_term = -float((batch["advantages"][:, None] * mask).sum() / mask.sum())
        if beta == 0.0:
            assert losses[beta] == pytest.approx(policy_term, abs=1e-6)
        else:
            assert losses[beta] > policy_term  # the RFT adapter moved away from the SFT reference: KL > 0
    with pytest.raises(IndexError, match=r"pair_index 99 is outside the dataset's 8 pairs"):
        grpo.scored_batch(trainer, pair_index=99)


def test_grpo_with_the_paper_reward(sft_run, tiny) -> None:
    run, _ = sft_run
    result = grpo.train_grpo(tiny, run)  # defaults: the run's train pairs and SFT adapter
    assert result.completions_path == runfiles.completions_path(run)
    assert result.adapter_dir == runfiles.adapter_dir(run, "rft")
    records = [json.loads(line) for line in result.completions_path.read_text().splitlines()]
    assert len(records) == tiny.grpo.batch_size
    assert read_grpo_completions(result.completions_path) == records  # the one reader reads what was written
    for record in records:
        assert tuple(record) == GRPO_COMPLETION_FIELDS == ("step", "pair_id", "label", "completion", "reward")
        assert isinstance(record["step"], int) and isinstance(record["completion"], str)
        assert record["label"] in ("a", "b") and record["pair_id"] in {
            f"p{i}{s}" for i in range(N_PAIRS) for s in ("", ":swapped")
        }
        # The tiny random model never writes the format: every completion is a violation.
        assert record["reward"] == -1.0
    (row,) = log_rows(runfiles.log_path(run, "rft"))
    assert (row["reward"], row["format_violation"], row["wrong"], row["correct"]) == (-1.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("from_sft", [True, False])
def test_grpo_starts_from_the_sft_adapter(sft_run, tmp_path, from_sft) -> None:
    _, sft = sft_run
    frozen = get_profile("tiny", {"grpo.learning_rate": 0.0})  # a step that cannot move the weights
    result = grpo.train_grpo(
        frozen, tmp_path, [make_pair(i) for i in range(4)], sft.adapter_dir, from_sft=from_sft, reward_fn=varied_reward
    )
    start, end = lora_tensors(sft.adapter_dir), lora_tensors(result.adapter_dir)
    lora_b = [k for k in end if "lora_B" in k]
    if from_sft:
        assert all(torch.equal(start[k], end[k]) for k in start)  # GRPO began exactly at the SFT weights
    else:
        assert all(not end[k].any() for k in lora_b)  # fresh LoRA: B starts at zero (RFT-only ablation)


# ---- validation accuracy over GRPO steps, and GRPO from the base model -------------------------------

VALIDATION_COLUMNS = ("validation_accuracy", "validation_format")


def test_grpo_logs_validation_accuracy_on_due_steps_only(sft_run, tmp_path) -> None:
    _, sft = sft_run
    profile = get_profile("tiny", {"grpo.max_steps": 3, "grpo.eval_every": 2, "grpo.eval_pairs": 3})
    write_jsonl(runfiles.pairs_path(tmp_path, "validation"), [make_pair(i) for i in range(10, 15)])
    result = grpo.train_grpo(
        profile, tmp_path, [make_pair(i) for i in range(N_PAIRS)], sft.adapter_dir, reward_fn=varied_reward
    )
    rows = log_rows(result.log_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(GRPO_LOG_FIELDS)  # stable columns, validation ones included
    for row in rows:
        if row["step"] == 2:  # the only step divisible by eval_every=2
            # The tiny random model never writes the format: no greedy judgement parses or is correct.
            assert (row["validation_accuracy"], row["validation_format"]) == (0.0, 0.0)
        else:  # not evaluated: empty in the CSV
            assert (row["validation_accuracy"], row["validation_format"]) == (None, None)


def test_validation_does_not_change_training(sft_run, tmp_path) -> None:
    _, sft = sft_run
    pairs = [make_pair(i) for i in range(4)]
    adapters = {}
    for eval_every in (0, 1):  # off, then every step
        run = tmp_path / f"every{eval_every}"
        profile = get_profile("tiny", {"grpo.eval_every": eval_every})
        grpo.train_grpo(profile, run, pairs, sft.adapter_dir, reward_fn=varied_reward, validation_pairs=pairs[:2])
        adapters[eval_every] = lora_tensors(runfiles.adapter_dir(run, "rft"))
    # greedy decoding draws no random numbers: the GRPO run is the same with or without evaluation
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


def test_grpo_validation_is_off_without_a_validation_file(sft_run, tmp_path) -> None:
    _, sft = sft_run  # tmp_path has no data/pairs/validation.jsonl
    result = grpo.train_grpo(get_profile("tiny"), tmp_path, [make_pair(i) for i in range(4)], sft.adapter_dir)
    (row,) = log_rows(result.log_path)
    assert (row["validation_accuracy"], row["validation_format"]) == (None, None)


def test_grpo_validation_is_off_with_eval_every_zero(sft_run, tmp_path) -> None:
    _, sft = sft_run
    off = get_profile("tiny", {"grpo.eval_every": 0})
    result = grpo.train_grpo(
        off, tmp_path, [make_pair(i) for i in range(4)], sft.adapter_dir, validation_pairs=[make_pair(9)]
    )
    (row,) = log_rows(result.log_path)
    assert (row["validation_accuracy"], row["validation_format"]) == (None, None)


def test_validation_eval_scores_outcomes(tmp_path, monkeypatch) -> None:
    from transformers import AutoTokenizer

    from persrm_lib.models import client, generation, registry

    tiny = get_profile("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(registry.resolve("tiny-random")))
    pairs = [make_pair(i) for i in range(4)]  # labels a, b, a, b
    texts = [
        render_output("c", "e", (8, 2)),  # prefers a, label a: correct
        render_output("c", "e", (8, 2)),  # prefers a, label b: wrong but parsed
        "no format at all",  # format violation
        render_output("c", "e", (1, 9)),  # prefers b, label b: correct
    ]
    seen = {}

    def fake_generate(model, tok, prompts, max_new_tokens, batch_size, stop_strings=(), stop_when=None):
        seen.update(prompts=list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size)
        return generation.GenerationResult(texts, [1] * 4, [1] * 4, 0.1, batch_size)

    monkeypatch.setattr(client, "generate", fake_generate)  # what LocalChatClient generates with
    log = TrainingLog(tmp_path / "log.csv", GRPO_LOG_FIELDS)
    evaluator = ValidationEval(tiny, pairs, tokenizer, log, every=3)
    model = torch.nn.Linear(1, 1)
    model.train()
    assert evaluator.evaluate(model) == {"validation_accuracy": 0.5, "validation_format": 0.75}
    assert model.training  # back in train mode after the evaluation
    assert seen["max_new_tokens"] == tiny.grpo.max_completion_length and seen["batch_size"] == tiny.grpo.batch_size
    assert seen["prompts"][0].endswith("<|im_start|>assistant\n")  # chat-templated, ready for the judgement
    assert [evaluator.due(s, 10) for s in range(0, 8)] == [False, False, False, True, False, False, True, False]
    assert not evaluator.due(12, 10)  # past the last step


def test_training_log_merges_added_values_into_the_step_row(tmp_path) -> None:
    log = TrainingLog(tmp_path / "log.csv", GRPO_LOG_FIELDS)
    log.begin()
    log.add(2, {"validation_accuracy": 0.25, "validation_format": 0.5})
    log.record(1, {"loss": 0.1})
    log.record(2, {"loss": 0.2})
    rows = log_rows(tmp_path / "log.csv")
    assert [(r["step"], r["validation_accuracy"], r["validation_format"]) for r in rows] == [
        (1, None, None),  # not evaluated
        (2, 0.25, 0.5),
    ]


def test_grpo_from_base_writes_its_own_stage(sft_run, tmp_path) -> None:
    _, sft = sft_run
    tiny = get_profile("tiny")
    result = grpo.train_grpo(
        tiny, tmp_path, [make_pair(i) for i in range(4)], from_sft=False, stage="rft_from_base", reward_fn=varied_reward
    )
    folder = tmp_path / "rft_from_base"
    assert result.stage == "rft_from_base"
    assert result.adapter_dir == runfiles.adapter_dir(tmp_path, "rft_from_base") == folder / "adapter"
    assert result.log_path == runfiles.log_path(tmp_path, "rft_from_base") == folder / "log.csv"
    assert (
        result.completions_path == runfiles.completions_path(tmp_path, "rft_from_base") == folder / "completions.jsonl"
    )
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert len(result.completions_path.read_text().splitlines()) == tiny.grpo.batch_size
    info = json.loads((folder / "adapter" / "persrm_training.json").read_text())
    assert (info["stage"], info["from_sft"]) == ("rft_from_base", None)
    assert not (tmp_path / "rft").exists()  # the from-SFT stage is left alone


@pytest.mark.parametrize(
    "stage",
    [
        "sft",  # another stage's folder
        "../rft",  # a path
        "rft/base",  # a sub-folder
        "rft-from-base",  # not an identifier
        "",  # empty
    ],
)
def test_grpo_refuses_a_bad_stage(no_model, tmp_path, stage) -> None:
    with pytest.raises(ValueError, match=rf"GRPO stage {stage!r} is not a run-folder stage name"):
        grpo.train_grpo(get_profile("tiny"), tmp_path, pairs=[make_pair(0)], from_sft=False, stage=stage)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], r"validation pairs: no pairs to train on"),  # empty validation set
        ([{"id": "v1"}], r"validation pairs: pair .*pairs 0"),  # a record that is not a pair
    ],
)
def test_grpo_refuses_bad_validation_pairs(no_model, tmp_path, pairs, message) -> None:
    with pytest.raises(TrainingDataError, match=message):
        grpo.train_grpo(get_profile("tiny"), tmp_path, pairs=[make_pair(0)], from_sft=False, validation_pairs=pairs)


def test_grpo_config_follows_the_profile(tmp_path) -> None:
    paper = get_profile("paper")
    config = grpo.grpo_config(paper, tmp_path)
    assert (config.num_generations, config.beta, config.temperature) == (8, 1e-3, 1.0)
    assert config.max_completion_length == paper.grpo.max_completion_length
    assert config.generation_batch_size == 32  # grpo.batch_size completions per optimiser step
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == 32
    assert (config.use_cpu, config.bf16, config.fp16, config.report_to) == (True, False, False, [])
    assert (config.seed, config.data_seed, config.learning_rate) == (0, 0, 3e-7)


def test_sft_config_follows_the_profile(tmp_path) -> None:
    smoke = get_profile("smoke", {"seed": 7, "sft.batch_size": 4})
    config = sft.sft_config(smoke, tmp_path)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (1, 4)
    assert (config.max_steps, config.learning_rate, config.max_length) == (600, 1e-3, 1024)
    assert (config.completion_only_loss, config.seed, config.data_seed) == (True, 7, 7)
    assert (config.use_cpu, config.bf16, config.fp16) == (True, False, False)
    # the schedule after warm-up: smoke keeps lr constant (as the learning curves did), cpu decays it
    assert config.lr_scheduler_type == "constant"
    assert sft.sft_config(get_profile("cpu"), tmp_path).lr_scheduler_type == "linear"
    # plain nll over the logits CompletionLogits keeps; Unsloth computes its own loss
    assert config.loss_type == "nll" and sft.sft_config(smoke, tmp_path, "unsloth").loss_type == "chunked_nll"


# ---- bad input: a clear error before any model is loaded ------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model gets loaded: errors must come before training starts."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(backend, "load_for_training", refuse)


def _unfaithful(t: dict) -> dict:
    return t | {"faithful": False}


def _unfiltered(t: dict) -> dict:
    return {k: v for k, v in t.items() if k != "faithful"}


def _unparsable(t: dict) -> dict:
    return t | {"completion": t["completion"] + " The end."}


def _contradicts(t: dict) -> dict:
    return t | {"label": "b" if t["label"] == "a" else "a"}


def _no_label(t: dict) -> dict:
    return {k: v for k, v in t.items() if k != "label"}


BAD_TRACES = [
    # (change to the third trace, message)
    (_unfaithful, r"traces 2 \(trace 'p2'\) is not marked faithful \(faithful=False\)"),  # dropped by the filter
    (_unfiltered, r"traces 2 \(trace 'p2'\): field 'faithful' is missing"),  # the filter never ran
    (_unparsable, r"traces 2 \(trace 'p2'\): completion does not parse: text after </scores>"),  # bad completion
    (_contradicts, r"trace 'p2'\) is marked faithful but its scores \[8\.0, 2\.0\] do not prefer"),  # wrong label
    (_no_label, r"trace traces 2: missing field\(s\): label"),  # breaks the pair contract
]


@pytest.mark.parametrize(("spoil", "message"), BAD_TRACES)
def test_bad_traces_are_refused(no_model, tiny, tmp_path, spoil, message) -> None:
    traces = [make_trace(i) for i in range(4)]
    traces[2] = spoil(traces[2])
    with pytest.raises(TrainingDataError, match=message):
        sft.train_sft(tiny, tmp_path, traces)


def test_bad_trace_in_a_file_names_the_line(no_model, tiny, tmp_path) -> None:
    traces = [make_trace(i) for i in range(3)]
    traces[1] = _unfaithful(traces[1])
    write_jsonl(runfiles.faithful_traces_path(tmp_path), traces)
    with pytest.raises(
        TrainingDataError, match=r"traces_faithful.jsonl record 2 \(trace 'p1'\) is not marked faithful"
    ):
        sft.train_sft(tiny, tmp_path)


@pytest.mark.parametrize(
    ("as_file", "message"),
    [
        (False, r"no traces to train on: the given traces holds no trace"),  # an empty list
        (True, r"cannot train on these traces: .*t.jsonl holds no trace"),  # an empty file (read_traces)
    ],
)
def test_empty_trace_set(no_model, tiny, tmp_path, as_file, message) -> None:
    source = write_jsonl(tmp_path / "t.jsonl", []) if as_file else []
    with pytest.raises(TrainingDataError, match=message):
        sft.train_sft(tiny, tmp_path, source)


def test_repeated_trace_id_in_a_file(no_model, tiny, tmp_path) -> None:
    source = write_jsonl(tmp_path / "t.jsonl", [make_trace(0), make_trace(0)])
    with pytest.raises(TrainingDataError, match=r"t.jsonl line 2: trace id 'p0' repeats line 1"):
        sft.train_sft(tiny, tmp_path, source)


def test_missing_trace_file(no_model, tiny, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="traces_faithful.jsonl is missing: run 02_filter_audit first"):
        sft.train_sft(tiny, tmp_path)


def test_trace_longer_than_max_seq_length(tiny, tmp_path) -> None:
    short = get_profile("tiny", {"model.max_seq_length": 64})
    with pytest.raises(
        TrainingDataError, match=r"trace 0 \(id .*\) is \d+ tokens long .* more than model.max_seq_length=64"
    ):
        sft.train_sft(short, tmp_path, [make_trace(0)])
    assert not runfiles.adapter_dir(tmp_path, "sft").exists()


def test_grpo_batch_not_divisible(no_model, tiny, tmp_path) -> None:
    # Built by hand: get_profile would refuse it already; train_grpo must refuse it too.
    bad = dataclasses.replace(tiny, grpo=dataclasses.replace(tiny.grpo, batch_size=5, num_generations=2))
    with pytest.raises(ValueError, match=r"grpo.batch_size=5 does not divide by grpo.num_generations=2"):
        grpo.train_grpo(bad, tmp_path, pairs=[make_pair(0)])


def test_grpo_batch_not_divisible_by_processes(no_model, tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"grpo.batch_size=4 does not divide by the 3 training processes"):
        grpo.train_grpo(tiny, tmp_path, pairs=[make_pair(0)])


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], r"no pairs to train on"),  # empty pair set
        ([make_pair(0) | {"label": "chosen"}], r"pair pairs 0: field 'label' must be 'a' or 'b'"),  # bad label
        ([{k: v for k, v in make_pair(0).items() if k != "query"}], r"missing field\(s\): query"),  # no query
    ],
)
def test_bad_pairs_are_refused(no_model, tiny, tmp_path, pairs, message) -> None:
    with pytest.raises(TrainingDataError, match=message):
        grpo.train_grpo(tiny, tmp_path, pairs=pairs, from_sft=False)


def test_grpo_without_sft_adapter(no_model, tiny, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no adapter at .*sft.adapter .*run 03_sft"):
        grpo.train_grpo(tiny, tmp_path, pairs=[make_pair(0)])


def test_grpo_refuses_an_adapter_of_another_shape(no_model, sft_run, tmp_path) -> None:
    _, sft = sft_run
    wider = get_profile("tiny", {"lora.r": 8})
    with pytest.raises(ValueError, match=r"has LoRA \{'r': 4.*the profile 'tiny' asks for \{'r': 8"):
        grpo.train_grpo(wider, tmp_path, pairs=[make_pair(0)], sft_adapter=sft.adapter_dir)


def test_grpo_refuses_an_adapter_of_another_model(no_model, sft_run, tmp_path) -> None:
    _, sft = sft_run
    other = get_profile("tiny", {"model.name": "smollm2-135m-instruct"})
    with pytest.raises(ValueError, match=r"trained on model 'tiny-random', the profile 'tiny' uses 'smollm2"):
        grpo.train_grpo(other, tmp_path, pairs=[make_pair(0)], sft_adapter=sft.adapter_dir)


# ---- the CSV log --------------------------------------------------------------------------------


def test_training_log_rows(tmp_path) -> None:
    tracker = RewardTracker()
    ok = render_output("c", "e", (8, 2))
    tracker([ok, ok], label=["a", "b"])  # step 1: one correct, one wrong
    tracker([ok, "junk"], label=["a", "a"])  # step 2: one correct, one violation
    log = TrainingLog(tmp_path / "log.csv", GRPO_LOG_FIELDS, tracker=tracker)
    log.begin()
    log.record(2, {"loss": 0.5, "reward": 0.25, "kl": 0.01, "completions/mean_length": 12.0, "epoch": 1.0})
    assert log.record(2, {"train_loss": 0.5, "train_runtime": 3.0}) is None  # the end-of-training summary
    (row,) = log_rows(tmp_path / "log.csv")
    assert row["step"] == 2 and row["loss"] == 0.5 and row["completion_length"] == 12.0
    assert (row["format_violation"], row["wrong"], row["correct"]) == (0.25, 0.25, 0.5)
    assert row["seconds_per_step"] is None and row["grad_norm"] is None  # not measured, not logged


def test_training_log_prints_about_twenty_rows_and_writes_every_row(tmp_path, capsys) -> None:
    log = TrainingLog(tmp_path / "log.csv", SFT_LOG_FIELDS)
    log.begin()
    log.max_steps = 600
    for step in range(1, 601):
        log.record(step, {"loss": 1.0 / step, "learning_rate": 1e-3, "epoch": step / 600})
    printed = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert printed == ["1/600"] + [f"{s}/600" for s in range(31, 600, 30)] + ["600/600"]  # first, every 30, last
    assert [row["step"] for row in log_rows(tmp_path / "log.csv")] == list(range(1, 601))
    short = TrainingLog(tmp_path / "short.csv", SFT_LOG_FIELDS)
    short.begin()
    short.max_steps = 3
    for step in (1, 2, 3):
        short.record(step, {"loss": 0.5})
    assert len(capsys.readouterr().out.splitlines()) == 3  # a short run prints every row
    # logging every 7th step of 1,500: the first logged row, then one at least 75 steps later, the last
    sparse = TrainingLog(tmp_path / "sparse.csv", SFT_LOG_FIELDS)
    sparse.begin()
    sparse.max_steps = 1500
    logged = [*range(7, 1500, 7), 1500]
    for step in logged:
        sparse.record(step, {"loss": 0.5})
    printed = [int(line.split()[1].split("/")[0]) for line in capsys.readouterr().out.splitlines()]
    assert printed[0] == 7 and printed[-1] == 1500 and 19 <= len(printed) <= 21
    assert all(later - earlier >= 75 for earlier, later in zip(printed, printed[1:-1], strict=False))


# ---- reading the logs back: the one reader, the headline numbers, the figures -----------------


def write_grpo_log(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=GRPO_LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in GRPO_LOG_FIELDS})
    return path


GRPO_ROWS = [  # out of step order; validation evaluated at step 2 only; no seconds_per_step
    {"step": 2, "loss": 0.1, "reward": 0.5, "format_violation": 0, "wrong": 0.25, "correct": 0.75, "kl": 0.02,
     "completion_length": 30, "validation_accuracy": 0.5, "validation_format": 1.0},
    {"step": 1, "loss": 0.2, "reward": -1, "format_violation": 1, "wrong": 0, "correct": 0, "kl": "",
     "completion_length": 40},
]  # fmt: skip


def test_read_log_reads_the_written_names(tmp_path) -> None:
    log = read_log(write_grpo_log(tmp_path / "log.csv", GRPO_ROWS))
    assert tuple(log.columns) == GRPO_LOG_FIELDS  # the names written, no renaming
    assert log["step"].tolist() == [1, 2] and log["step"].dtype == int  # sorted by step
    assert log["reward"].tolist() == [-1.0, 0.5]
    assert log["correct"].tolist() == [0.0, 0.75]
    assert logs.empty_columns(log, logs.GRPO_CURVES) == ["learning_rate", "seconds_per_step"]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, FileNotFoundError, "training log .*log.csv does not exist"),  # no file
        ("", ValueError, "is empty"),  # not even a header
        ("loss,reward\n0.1,0.5\n", ValueError, r"has columns loss, reward; expected the SFT log's"),  # other names
        (",".join(SFT_LOG_FIELDS) + "\n", ValueError, "has no rows"),  # a header only
        (",".join(SFT_LOG_FIELDS) + "\n1,0.5,high,,,,,\n", ValueError, "column 'loss' holds a value that is not"),
    ],
)
def test_read_log_bad_files(tmp_path, content, error, message) -> None:
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message):
        read_log(path)


def test_headlines_from_the_logs(tmp_path) -> None:
    rft = read_log(write_grpo_log(tmp_path / "log.csv", GRPO_ROWS))
    assert logs.grpo_headline(rft) == {
        "mean_reward": -0.25,
        "final_reward": 0.5,
        "final_correct": 0.75,
        "final_format_violation": 0.0,
        "final_kl": 0.02,
        "mean_completion_length": 35.0,
        "validation_evaluations": 1,
        "final_validation_accuracy": 0.5,
    }
    sft_log = pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.25]})
    assert logs.sft_headline(sft_log) == {"first_loss": 2.0, "final_loss": 1.25}
    dynamics = logs.training_dynamics({"sft": sft_log, "rft": rft})
    assert (dynamics["sft_steps"], dynamics["sft_first_loss"], dynamics["sft_final_loss"]) == (3, 2.0, 1.25)
    assert (dynamics["rft_first_reward"], dynamics["rft_final_reward"], dynamics["rft_final_share_correct"]) == (
        -1.0,
        0.5,
        0.75,
    )
    assert (dynamics["rft_from_base_steps"], dynamics["rft_from_base_final_reward"]) == (0, None)  # no such log
    assert dynamics["rft_missing_columns"] == 2  # learning_rate, seconds_per_step


def test_figures_draw_the_logs_and_name_what_is_missing(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from persrm_lib.train import figures

    rft = read_log(write_grpo_log(tmp_path / "log.csv", GRPO_ROWS))
    sft_log = pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5]})
    drawn = [
        figures.plot_sft_loss(sft_log),
        figures.plot_grpo_reward(rft, smooth=2),
        figures.plot_grpo_outcomes(rft),
        figures.plot_grpo_length_kl(rft),
        figures.plot_grpo_starts({"from SFT": rft, "from base": rft}),
    ]
    assert [len(f.axes) for f in drawn] == [1, 1, 1, 2, 2]
    assert len(drawn[1].axes[0].lines) == 3  # mean reward, validation accuracy, the zero line
    for fig in drawn:
        plt.close(fig)
    with pytest.raises(ValueError, match=r"no values in column\(s\) reward"):
        figures.plot_grpo_reward(rft.assign(reward=float("nan")))
    with pytest.raises(ValueError, match=r"no values in column\(s\) completion_length, kl"):
        figures.plot_grpo_length_kl(rft.drop(columns=["completion_length", "kl"]))
    with pytest.raises(ValueError, match="need two GRPO logs to compare, got 1"):
        figures.plot_grpo_starts({"from SFT": rft})


def test_grpo_position_bias_figure_draws_the_logged_shares_and_names_a_missing_column(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from persrm_lib.train import figures

    rows = [
        {**GRPO_ROWS[1], "frac_reward_zero_std": 1.0, "a_preference": 1.0},  # always A: every group uniform
        {**GRPO_ROWS[0], "frac_reward_zero_std": 0.5, "joint_frac_reward_zero_std": 0.0, "a_preference": 0.6},
    ]
    log = read_log(write_grpo_log(tmp_path / "log.csv", rows))
    fig = figures.plot_grpo_order_robustness(log)
    lines = {line.get_label(): line.get_ydata().tolist() for line in fig.axes[0].lines}
    assert lines["A-preference (sampled)"] == [1.0, 0.6]
    assert lines["zero-spread groups, per prompt"] == [1.0, 0.5]
    assert lines["zero-spread groups, both orders jointly"][1] == 0.0
    plt.close(fig)
    with pytest.raises(ValueError, match=r"no values in column\(s\) a_preference"):
        figures.plot_grpo_order_robustness(read_log(write_grpo_log(tmp_path / "old.csv", GRPO_ROWS)))


GOOD_COMPLETION = {"step": 1, "pair_id": "p1", "label": "a", "completion": "text", "reward": -1.0}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({k: v for k, v in GOOD_COMPLETION.items() if k != "pair_id"}, "record lacks field 'pair_id'"),  # no id
        ({k: v for k, v in GOOD_COMPLETION.items() if k != "reward"}, "record lacks field 'reward'"),  # no reward
        ({**GOOD_COMPLETION, "pair_id": None}, "pair_id must be a non-empty string, got None"),  # id not written
        ({**GOOD_COMPLETION, "step": "3"}, "step must be a non-negative integer, got '3'"),  # step as text
        ({**GOOD_COMPLETION, "label": "A"}, "label must be 'a' or 'b', got 'A'"),  # label in the wrong case
        ({**GOOD_COMPLETION, "completion": None}, "completion must be text, got NoneType"),  # no text
        ({**GOOD_COMPLETION, "reward": "high"}, "reward must be a number, got 'high'"),  # reward as text
    ],
)
def test_read_grpo_completions_names_the_bad_line(tmp_path, record, message) -> None:
    path = write_jsonl(tmp_path / "completions.jsonl", [GOOD_COMPLETION, record])
    with pytest.raises(ValueError, match=f"completions.jsonl:2: {message}"):
        read_grpo_completions(path)


def test_read_grpo_completions_appends_other_processes(tmp_path) -> None:
    write_jsonl(tmp_path / "completions.jsonl", [GOOD_COMPLETION])
    write_jsonl(tmp_path / "completions.rank1.jsonl", [{**GOOD_COMPLETION, "pair_id": "p7", "reward": 1}])
    records = read_grpo_completions(tmp_path / "completions.jsonl")
    assert [(r["pair_id"], r["reward"]) for r in records] == [("p1", -1.0), ("p7", 1.0)]
    with pytest.raises(FileNotFoundError, match="missing: run notebook 04_rft_grpo first"):
        read_grpo_completions(tmp_path / "rft" / "completions.jsonl")
